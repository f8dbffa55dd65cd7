"""Embeddings of a set of images: one or several backbones' cached vectors, concatenated, and an
optional whitening fitted on labelled + pool images.

Why several backbones: their errors differ, and a concatenation lets the linear head weigh them.
Why whitening on labelled + pool: it is unsupervised, so the pool may shape it, and it removes
the few dominant directions (often the acquisition source) that a 100-image head overfits to.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from brainscan_exp.features.extract import FeatureExtractor
from brainscan_exp.features.vectors import VectorTable, as_matrix
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import MRIPreprocess


def embed(
    paths_by_hash: dict[str, str], backbones: list[Backbone], mri: MRIPreprocess, extractor: FeatureExtractor
) -> tuple[VectorTable, list[str]]:
    """pixel hash -> concatenated vector over ``backbones`` (each block from its content-keyed
    store, computed only where missing), as an in-memory table of ``paths_by_hash``'s images;
    also returns the store keys."""
    tables, keys = [], []
    for backbone in backbones:
        store, _ = extractor.run(paths_by_hash, backbone, mri)
        tables.append(store.table())
        keys.append(store.key)
    return tables[0].hstack(tables[1:], hashes=list(paths_by_hash)), keys


def stack(vectors, hashes, dim: int | None = None) -> np.ndarray:
    """Stacked float32 vectors of ``hashes`` from a :class:`VectorTable` or a ``{hash: vector}``."""
    return as_matrix(vectors, hashes, dim)


def whiten_with(
    X_lab: np.ndarray, X_pool: np.ndarray, X_other: np.ndarray | None = None, n_components: int | None = None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray | None]]:
    """PCA whitening fitted on labelled + pool images (no labels used), applied to all three;
    ``n_components`` None or 0: unchanged."""
    if not n_components:
        return X_lab, (X_pool, X_other)
    X = np.concatenate([X_lab, X_pool])
    pca = PCA(n_components=min(int(n_components), X.shape[0] - 1, X.shape[1]), whiten=True, random_state=0).fit(X)
    other = pca.transform(X_other) if X_other is not None and len(X_other) else X_other
    return pca.transform(X_lab), (pca.transform(X_pool), other)
