"""Evaluation of the brain-tumour classifiers: per-split metrics and operating point
(:mod:`.metrics`), repeated-CV aggregation and paired regime comparison
(:mod:`.aggregate`), and figures (:mod:`.figures`)."""

from .aggregate import (
    KEY_METRICS,
    LOWER_IS_BETTER,
    TTestResult,
    corrected_t_ci,
    holm,
    label_efficiency_table,
    paired_differences,
    summarise,
    to_markdown,
)
from .figures import (
    plot_confusion_matrix,
    plot_forest,
    plot_label_efficiency,
    plot_reliability_diagram,
    plot_roc_curve,
)
from .metrics import (
    CLASS_NAMES,
    binary_metrics,
    choose_threshold,
    confusion_counts,
    expected_calibration_error,
)

__all__ = [
    "CLASS_NAMES",
    "KEY_METRICS",
    "LOWER_IS_BETTER",
    "TTestResult",
    "binary_metrics",
    "choose_threshold",
    "confusion_counts",
    "corrected_t_ci",
    "expected_calibration_error",
    "holm",
    "label_efficiency_table",
    "paired_differences",
    "plot_confusion_matrix",
    "plot_forest",
    "plot_label_efficiency",
    "plot_reliability_diagram",
    "plot_roc_curve",
    "summarise",
    "to_markdown",
]
