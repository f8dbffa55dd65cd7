"""Training regimes: how a classifier is fitted from the labelled fold and the unlabelled pool."""

from brainscan_exp.regimes.base import FoldData, Regime, TrainContext
from brainscan_exp.regimes.consistency import ConsistencyRegime
from brainscan_exp.regimes.estimator import EstimatorRegime
from brainscan_exp.regimes.lightning import PseudoLabelRegime, SupervisedRegime
from brainscan_exp.regimes.out_of_fold import out_of_fold_scores

__all__ = [
    "ConsistencyRegime",
    "EstimatorRegime",
    "FoldData",
    "PseudoLabelRegime",
    "Regime",
    "SupervisedRegime",
    "TrainContext",
    "out_of_fold_scores",
]
