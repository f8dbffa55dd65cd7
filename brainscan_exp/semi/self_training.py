"""Self-training that keeps the pseudo-labels class-balanced.

scikit-learn's SelfTrainingClassifier adds the most confident points whatever their class; on a
pool that is 85 % tumour (or 15 %), that quickly drowns one class. Here each round adds at most
``per_class`` confident points of each class.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone


class BalancedSelfTraining(ClassifierMixin, BaseEstimator):
    def __init__(self, base_estimator=None, threshold: float = 0.9, per_class: int = 25, max_iter: int = 10):
        self.base_estimator = base_estimator
        self.threshold = threshold
        self.per_class = per_class
        self.max_iter = max_iter

    def fit(self, X, y):
        X, y = np.asarray(X), np.asarray(y).copy()
        self.labeled_iter_ = np.where(y >= 0, 0, -1)
        for it in range(1, self.max_iter + 1):
            estimator = clone(self.base_estimator).fit(X[y >= 0], y[y >= 0])
            unlabelled = np.flatnonzero(y < 0)
            if not len(unlabelled):
                break
            proba = estimator.predict_proba(X[unlabelled])
            added = 0
            for column, cls in enumerate(estimator.classes_):
                confident = unlabelled[(proba[:, column] >= self.threshold)]
                order = np.argsort(-proba[(proba[:, column] >= self.threshold), column])[: self.per_class]
                chosen = confident[order]
                y[chosen] = cls
                self.labeled_iter_[chosen] = it
                added += len(chosen)
            if not added:
                break
        self.n_iter_ = it
        self.transduction_ = y
        self.estimator_ = clone(self.base_estimator).fit(X[y >= 0], y[y >= 0])
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        return self.estimator_.predict(X)
