"""Semi-supervised building blocks: pseudo-labellers that follow scikit-learn's conventions."""

from brainscan_exp.semi.pseudo_labels import ClusterPseudoLabeler, SpreadingPseudoLabeler, TeacherPseudoLabeler

__all__ = ["ClusterPseudoLabeler", "SpreadingPseudoLabeler", "TeacherPseudoLabeler"]
