"""Regimes whose classifier is a scikit-learn estimator on the embeddings: the linear probe, kNN,
self-training and label spreading. Semi-supervised estimators get the pool with ``y = -1``."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from brainscan_exp.regimes.base import FoldData, Regime, TrainContext


def _fit_neighbours(estimator, n_labelled: int):
    """A supervised kNN cannot ask for more neighbours than there are training images (the
    label-efficiency curve goes down to a handful of labels): ``n_neighbors`` is capped there."""
    params = estimator.get_params()
    for key, value in params.items():
        if key.split("__")[-1] == "n_neighbors" and isinstance(value, int) and value > n_labelled > 0:
            owner = params.get(key.rsplit("__", 1)[0]) if "__" in key else estimator
            if owner is not None and "KNeighbors" in type(owner).__name__:
                estimator.set_params(**{key: n_labelled})
    return estimator


class EstimatorRegime(Regime):
    def __init__(self, estimator, semi_supervised: bool = False, name: str = "estimator"):
        self.estimator = estimator
        self.semi_supervised = semi_supervised
        self.name = name

    def fit(self, data: FoldData, ctx: TrainContext) -> EstimatorRegime:
        if ctx.finetune != "frozen":
            raise ValueError(f"regime {self.name} works on cached embeddings: set regime.finetune=frozen")
        X, y = data.semi_supervised_view() if self.semi_supervised else (data.X_train, data.y_train)
        self.estimator_ = _fit_neighbours(clone(self.estimator), int((np.asarray(y) >= 0).sum())).fit(X, y)
        final = self.estimator_[-1] if hasattr(self.estimator_, "steps") else self.estimator_
        if self.semi_supervised and hasattr(final, "transduction_"):
            pool = np.asarray(final.transduction_)[len(data.X_train) :]
            ctx.log(
                {"pseudo/n_labelled_pool": float((pool >= 0).sum()), "pseudo/cancer_share": float((pool == 1).mean())}
            )
        return self

    def predict_proba(self, X: np.ndarray, paths=None) -> np.ndarray:
        return self.estimator_.predict_proba(X)[:, 1]
