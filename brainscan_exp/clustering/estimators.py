"""Clustering estimators: a reduce-then-cluster wrapper, a DBSCAN that sets its own eps, and
the cluster -> class mapping that turns clusters into pseudo-labels.

All follow scikit-learn conventions (hyperparameters in ``__init__``, fitted attributes with a
trailing underscore), so they ``clone``, ``set_params`` and Hydra-instantiate like any estimator.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin, clone
from sklearn.cluster import DBSCAN
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

__all__ = [
    "AutoEpsDBSCAN",
    "ClusterToClassMapper",
    "ReducedClusterer",
    "make_reduction",
]

NOISE = -1
"""Cluster id of noise points (sklearn's DBSCAN/HDBSCAN convention); also 'no class'."""

UNLABELLED = -1
"""Label of an image whose class the caller may not see (sklearn semi-supervised convention)."""

REDUCTIONS = ("none", "pca", "umap")


def make_reduction(
    kind: str = "none",
    n_components: int | float | None = None,
    random_state: int | None = 0,
    max_components: int | None = None,
) -> Pipeline:
    """Standardise, then reduce: features on different scales would otherwise let a few
    high-variance dimensions decide every distance.

    ``kind``: ``"none"`` (standardise only), ``"pca"`` (int ``n_components`` = number of
    components, float in (0, 1) = share of variance kept, ``None`` = all) or ``"umap"``
    (``n_components`` defaults to 10). ``max_components`` caps an integer ``n_components``
    (PCA cannot return more components than ``min(n_samples, n_features)``).
    """
    if kind == "none":
        reducer = "passthrough"
    elif kind == "pca":
        if isinstance(n_components, int) and max_components is not None:
            n_components = min(n_components, max_components)
        reducer = PCA(n_components=n_components, random_state=random_state)
    elif kind == "umap":
        import umap  # slow import (numba); only paid when UMAP is asked for

        if n_components is not None and not float(n_components).is_integer():
            raise ValueError(f"umap needs an integer n_components, got {n_components}")
        n = 10 if n_components is None else int(n_components)
        if max_components is not None:
            n = min(n, max_components)
        reducer = umap.UMAP(n_components=n, random_state=random_state)
    else:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {kind!r}")
    return Pipeline([("scale", StandardScaler()), ("reduce", reducer)])


class AutoEpsDBSCAN(ClusterMixin, BaseEstimator):
    """DBSCAN with ``eps`` read off the data, since a fixed eps does not transfer between
    feature extractors or reductions.

    ``eps_`` is the ``quantile`` of every point's distance to its ``min_samples``-th nearest
    neighbour (itself included, as DBSCAN counts it): with ``quantile=0.9`` about 90 % of the
    points are core points, the rest are border points or noise.
    """

    def __init__(self, min_samples: int = 5, quantile: float = 0.9, metric: str = "euclidean"):
        self.min_samples = min_samples
        self.quantile = quantile
        self.metric = metric

    def fit(self, X, y=None):
        X = check_array(X)
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {self.quantile}")
        if not 1 <= self.min_samples <= len(X):
            raise ValueError(f"min_samples must be in [1, n_samples={len(X)}], got {self.min_samples}")
        knn = NearestNeighbors(n_neighbors=self.min_samples, metric=self.metric).fit(X)
        k_distance = knn.kneighbors(X)[0][:, -1]
        # Duplicated points can make the quantile 0; DBSCAN needs eps > 0.
        self.eps_ = max(float(np.quantile(k_distance, self.quantile)), np.finfo(float).eps)
        self.dbscan_ = DBSCAN(eps=self.eps_, min_samples=self.min_samples, metric=self.metric).fit(X)
        self.labels_ = self.dbscan_.labels_
        self.core_sample_indices_ = self.dbscan_.core_sample_indices_
        self.components_ = self.dbscan_.components_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """Label of the nearest core sample if it lies within ``eps_``, else noise: the rule by
        which DBSCAN itself attaches border points."""
        check_is_fitted(self, "eps_")
        X = check_array(X)
        labels = np.full(len(X), NOISE, dtype=int)
        if len(self.components_) == 0:
            return labels
        nearest = NearestNeighbors(n_neighbors=1, metric=self.metric).fit(self.components_)
        dist, idx = nearest.kneighbors(X)
        within = dist[:, 0] <= self.eps_
        labels[within] = self.labels_[self.core_sample_indices_][idx[within, 0]]
        return labels


class ReducedClusterer(ClusterMixin, BaseEstimator):
    """Standardise -> reduce -> cluster, as one estimator so that a Hydra config (or a
    ``set_params`` sweep) describes the whole clustering recipe.

    ``random_state`` seeds the reduction; the inner ``clusterer`` keeps its own (the configs
    interpolate both from one value). ``predict`` uses the clusterer's ``predict`` when it has
    one (KMeans, GaussianMixture, AutoEpsDBSCAN); otherwise (HDBSCAN, Agglomerative, Spectral,
    which cannot place new points) a new point takes the cluster of its nearest training point
    in the reduced space (noise included).

    Fitted attributes: ``labels_``, ``n_clusters_`` (noise excluded), ``noise_share_``,
    ``embedding_`` (the reduced training data: the space in which internal metrics are
    meaningful), ``reducer_``, ``clusterer_``.
    """

    def __init__(
        self,
        clusterer,
        reduction: str = "none",
        n_components: int | float | None = None,
        random_state: int | None = 0,
    ):
        self.clusterer = clusterer
        self.reduction = reduction
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, y=None):
        X = check_array(X)
        self.reducer_ = make_reduction(
            self.reduction, self.n_components, self.random_state, max_components=min(X.shape)
        )
        self.embedding_ = self.reducer_.fit_transform(X)
        self.clusterer_ = clone(self.clusterer)
        self.labels_ = np.asarray(self.clusterer_.fit_predict(self.embedding_), dtype=int)
        self.n_clusters_ = int(np.unique(self.labels_[self.labels_ != NOISE]).size)
        self.noise_share_ = float(np.mean(self.labels_ == NOISE))
        if not hasattr(self.clusterer_, "predict"):
            self.nearest_ = KNeighborsClassifier(n_neighbors=1).fit(self.embedding_, self.labels_)
        self.n_features_in_ = X.shape[1]
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X).labels_

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "labels_")
        Z = self.reducer_.transform(check_array(X))
        if hasattr(self.clusterer_, "predict"):
            return np.asarray(self.clusterer_.predict(Z), dtype=int)
        return self.nearest_.predict(Z)


class ClusterToClassMapper(TransformerMixin, BaseEstimator):
    """Map cluster ids to classes from the labelled images alone, so clusters can act as
    pseudo-labels without any hidden label leaking in.

    ``fit(cluster_ids, y)`` reads ``y`` only where ``y != -1``. Each cluster takes the majority
    class of its labelled members (ties: the smallest class id). A cluster without a labelled
    member has no evidence of its own; with ``unmapped="majority"`` it takes the majority class
    of all labelled images, with ``unmapped="none"`` it maps to -1 (no pseudo-label). Either way
    it is listed in ``unmapped_clusters_``. Noise (-1), and any cluster id unseen in ``fit``,
    maps to -1.

    Fitted attributes, aligned with ``clusters_``: ``cluster_classes_``, ``n_labelled_`` and
    ``class_purity_`` (share of the majority class among the labelled members; NaN if none).
    """

    def __init__(self, unmapped: str = "majority"):
        self.unmapped = unmapped

    def fit(self, cluster_ids, y):
        cluster_ids = column_or_1d(cluster_ids).astype(int)
        y = column_or_1d(y).astype(int)
        if cluster_ids.shape != y.shape:
            raise ValueError(f"cluster_ids and y differ in length: {cluster_ids.size} vs {y.size}")
        if self.unmapped not in ("majority", "none"):
            raise ValueError(f"unmapped must be 'majority' or 'none', got {self.unmapped!r}")
        labelled = y != UNLABELLED
        if not labelled.any():
            raise ValueError("no labelled point (every y is -1): clusters cannot be mapped to classes")

        self.classes_, class_counts = np.unique(y[labelled], return_counts=True)
        self.majority_class_ = int(self.classes_[np.argmax(class_counts)])
        self.clusters_ = np.unique(cluster_ids[cluster_ids != NOISE])

        # counts[i, j]: labelled members of clusters_[i] in class classes_[j]
        counts = np.zeros((self.clusters_.size, self.classes_.size), dtype=int)
        rows = np.searchsorted(self.clusters_, cluster_ids[labelled])
        cols = np.searchsorted(self.classes_, y[labelled])
        keep = cluster_ids[labelled] != NOISE
        np.add.at(counts, (rows[keep], cols[keep]), 1)

        self.n_labelled_ = counts.sum(axis=1)
        has_labels = self.n_labelled_ > 0
        fallback = self.majority_class_ if self.unmapped == "majority" else UNLABELLED
        self.cluster_classes_ = np.where(has_labels, self.classes_[counts.argmax(axis=1)], fallback)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.class_purity_ = np.where(has_labels, counts.max(axis=1) / self.n_labelled_, np.nan)
        self.unmapped_clusters_ = self.clusters_[~has_labels]
        self.mapping_ = dict(zip(self.clusters_.tolist(), self.cluster_classes_.tolist()))
        return self

    def transform(self, cluster_ids) -> np.ndarray:
        """Class id per point; -1 for noise and for clusters not seen in ``fit``."""
        check_is_fitted(self, "mapping_")
        cluster_ids = column_or_1d(cluster_ids).astype(int)
        return np.array([self.mapping_.get(c, UNLABELLED) for c in cluster_ids.tolist()], dtype=int)
