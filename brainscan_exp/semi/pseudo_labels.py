"""Pseudo-labellers for the unlabelled pool, in scikit-learn's semi-supervised convention.

``fit(X, y)`` takes every point of the training fold plus the pool, with ``y = -1`` where the label
is unknown (the evaluation images are never passed in). After fitting, ``transduction_`` holds a
class per point (-1: no pseudo-label) and ``confidence_`` how much to trust it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading

from brainscan_exp.clustering import ClusterToClassMapper


def _check(y) -> np.ndarray:
    y = np.asarray(y)
    if not ((y == 0) | (y == 1) | (y == -1)).all():
        raise ValueError("y must hold 0, 1 or -1 (unlabelled)")
    if not ((y == 0).any() and (y == 1).any()):
        raise ValueError("pseudo-labelling needs labelled examples of both classes")
    return y


class ClusterPseudoLabeler(BaseEstimator):
    """The brief's method: cluster everything, then name each cluster by its labelled members."""

    def __init__(self, clusterer=None):
        self.clusterer = clusterer

    def fit(self, X, y):
        y = _check(y)
        self.clusterer_ = clone(self.clusterer).fit(X)
        clusters = np.asarray(self.clusterer_.labels_)
        self.mapper_ = ClusterToClassMapper().fit(clusters, y)
        self.transduction_ = np.asarray(self.mapper_.transform(clusters))
        purity = dict(zip(self.mapper_.clusters_.tolist(), np.nan_to_num(self.mapper_.class_purity_, nan=0.5).tolist()))
        self.confidence_ = np.array(
            [purity.get(c, 0.0) if t >= 0 else 0.0 for c, t in zip(clusters.tolist(), self.transduction_)]
        )
        self.clusters_ = clusters
        return self


class TeacherPseudoLabeler(BaseEstimator):
    """A classifier fitted on the labelled points keeps only its confident predictions."""

    def __init__(self, estimator=None, threshold: float = 0.9):
        self.estimator = estimator
        self.threshold = threshold

    def fit(self, X, y):
        y = _check(y)
        base = (
            self.estimator
            if self.estimator is not None
            else make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        )
        self.estimator_ = clone(base).fit(X[y >= 0], y[y >= 0])
        proba = self.estimator_.predict_proba(X)[:, 1]
        self.confidence_ = np.maximum(proba, 1 - proba)
        self.transduction_ = np.where(self.confidence_ >= self.threshold, (proba >= 0.5).astype(int), -1)
        self.transduction_[y >= 0] = y[y >= 0]
        return self


class SpreadingPseudoLabeler(ClassifierMixin, BaseEstimator):
    """Label spreading on a kNN graph of the (standardised, PCA-reduced) embeddings.

    Also a transductive classifier in its own right (``predict_proba``): the ``label_spreading``
    regime uses it directly."""

    def __init__(
        self, n_neighbors: int = 10, alpha: float = 0.2, n_components: int | float | None = 32, threshold: float = 0.0
    ):
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.n_components = n_components
        self.threshold = threshold

    def fit(self, X, y):
        y = _check(y)
        n_components = self.n_components
        if isinstance(n_components, int):
            n_components = min(n_components, *np.shape(X))
        steps = [StandardScaler()] + ([PCA(n_components, random_state=0)] if n_components else [])
        self.reducer_ = make_pipeline(*steps).fit(X)
        self.spreading_ = LabelSpreading(kernel="knn", n_neighbors=self.n_neighbors, alpha=self.alpha, max_iter=100)
        with np.errstate(invalid="ignore", divide="ignore"):  # unreached points: handled below
            self.spreading_.fit(self.reducer_.transform(X), y)
        raw = self.spreading_.label_distributions_
        self.confidence_ = _no_mass_is_uniform(raw).max(axis=1)
        self.transduction_ = np.where(
            ~_unreached(raw) & (self.confidence_ >= self.threshold), self.spreading_.transduction_, -1
        )
        self.classes_ = self.spreading_.classes_
        return self

    def predict_proba(self, X):
        with np.errstate(invalid="ignore", divide="ignore"):
            return _no_mass_is_uniform(self.spreading_.predict_proba(self.reducer_.transform(X)))


def _unreached(proba: np.ndarray) -> np.ndarray:
    """Rows of points whose kNN component holds no labelled image: 0/0 in scikit-learn (NaN)."""
    return ~np.isfinite(proba).all(axis=1) | (proba.sum(axis=1) == 0)


def _no_mass_is_uniform(proba: np.ndarray) -> np.ndarray:
    """An unreached point carries no information, so it gets the uniform distribution."""
    proba = np.array(proba, dtype=float)
    proba[_unreached(proba)] = 1.0 / proba.shape[1]
    return proba
