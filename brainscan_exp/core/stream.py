"""Scoring a pool too big for memory: rows in chunks through fitted models, bounded memory.

Why: at 4 million images the pool's vectors (8.3 GB at 520 dimensions) do not fit beside 15 fitted
inner models and their intermediates. The pool comes as a ``(n, d)`` array-like, typically the
store's read-only memmap (:meth:`~brainscan_exp.features.store.EmbeddingStore.table`) or a
:class:`~brainscan_exp.features.vectors.RowView` of the pool's rows in it; each chunk is read,
optionally transformed (a fitted whitening), scored by every model, and the memmap's pages are
handed back to the page cache, so resident memory is one chunk and the scores, whatever ``n``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from brainscan_exp.features.vectors import RowView, release_pages

__all__ = ["iter_chunks", "model_scores"]


def _positive_proba(model, X: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X))[:, 1]
    return np.asarray(model.decision_function(X))


def iter_chunks(
    matrix, rows: np.ndarray | None = None, chunk_size: int = 32_768
) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, X)``: float32 copies of consecutive blocks of ``matrix`` (or of its
    ``rows``, read in sorted order and put back in the caller's), ``chunk_size`` rows each."""
    source = matrix if rows is None else RowView(matrix, rows)  # sorted reads, put back in order
    for start in range(0, len(source), chunk_size):
        stop = min(len(source), start + chunk_size)
        X = np.array(source[start:stop], dtype=np.float32)
        release_pages(matrix)
        yield start, stop, X


def model_scores(
    matrix,
    models: Sequence,
    rows: np.ndarray | None = None,
    chunk_size: int = 32_768,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    score: Callable[[object, np.ndarray], np.ndarray] = _positive_proba,
) -> tuple[np.ndarray, np.ndarray]:
    """Each model's score of each row, in one pass: ``(mean over models (n,) float64, every
    model's (n_models, n) float32)`` - the mean for labels, the spread for a review committee.

    ``score(model, X)`` defaults to ``predict_proba(X)[:, 1]`` (``decision_function`` without it).
    Memory: ``chunk_size`` rows of ``matrix`` at a time, plus 4 bytes per row and model."""
    if not models:
        raise ValueError("scoring a pool needs at least one fitted model")
    n = len(matrix) if rows is None else len(rows)
    mean = np.empty(n, dtype=np.float64)
    each = np.empty((len(models), n), dtype=np.float32)
    for start, stop, X in iter_chunks(matrix, rows, chunk_size):
        if transform is not None:
            X = transform(X)
        scores = np.stack([np.asarray(score(model, X), dtype=np.float64) for model in models])
        mean[start:stop] = scores.mean(axis=0)
        each[:, start:stop] = scores
    return mean, each
