"""Unsupervised structure of the image features: clustering, cluster -> class pseudo-labels,
and checks that clusters follow the label rather than acquisition confounds."""

from .analysis import ClusterReport, run_cluster_analysis
from .confounds import (
    confound_association,
    confound_table,
    cramers_v,
    estimate_orientation,
    eta_squared,
    image_confounds,
    otsu_threshold,
)
from .estimators import AutoEpsDBSCAN, ClusterToClassMapper, ReducedClusterer, make_reduction
from .figures import plot_cluster_mosaic, plot_contingency, plot_k_sweep, plot_projections
from .metrics import agreement_scores, cluster_sizes, contingency_table, internal_scores
from .selection import KSweep, select_k

__all__ = [
    "AutoEpsDBSCAN",
    "ClusterReport",
    "ClusterToClassMapper",
    "KSweep",
    "ReducedClusterer",
    "agreement_scores",
    "cluster_sizes",
    "confound_association",
    "confound_table",
    "contingency_table",
    "cramers_v",
    "estimate_orientation",
    "eta_squared",
    "image_confounds",
    "internal_scores",
    "make_reduction",
    "otsu_threshold",
    "plot_cluster_mosaic",
    "plot_contingency",
    "plot_k_sweep",
    "plot_projections",
    "run_cluster_analysis",
    "select_k",
]
