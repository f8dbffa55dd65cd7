"""Semi-supervised building blocks: pseudo-labellers that follow scikit-learn's conventions."""

from brainscan_exp.semi.pseudo_labels import ClusterPseudoLabeler, SpreadingPseudoLabeler, TeacherPseudoLabeler
from brainscan_exp.semi.self_training import BalancedSelfTraining

__all__ = ["BalancedSelfTraining", "ClusterPseudoLabeler", "SpreadingPseudoLabeler", "TeacherPseudoLabeler"]
