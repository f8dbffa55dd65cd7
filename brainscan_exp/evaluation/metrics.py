"""Per-split classification metrics for the binary normal (0) / cancer (1) task.

Conventions used throughout the package:

* ``p`` is the predicted probability of the positive class (cancer = 1);
* a slice is predicted cancer when ``p >= threshold`` (the same rule as
  :func:`sklearn.metrics.roc_curve`, so a threshold chosen on a ROC curve
  reproduces its sensitivity exactly);
* a missed tumour (false negative) is the costliest error, hence the
  sensitivity-targeted operating point and the F2 score (recall weighted
  twice as much as precision).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    fbeta_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

__all__ = [
    "CLASS_NAMES",
    "binary_metrics",
    "choose_threshold",
    "confusion_counts",
    "expected_calibration_error",
]

CLASS_NAMES: tuple[str, str] = ("normal", "cancer")
_LABELS = [0, 1]


def _check_binary(y_true, p) -> tuple[np.ndarray, np.ndarray]:
    """Validate early so that a label/probability mix-up fails loudly instead of
    producing plausible-looking numbers."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(p, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and p have different lengths: {y.shape[0]} != {s.shape[0]}")
    if y.size == 0:
        raise ValueError("empty input")
    if not np.isin(y, _LABELS).all():
        raise ValueError(f"y_true must only contain 0 (normal) and 1 (cancer), got {np.unique(y)}")
    if not np.all(np.isfinite(s)) or s.min() < 0.0 or s.max() > 1.0:
        raise ValueError("p must be finite probabilities of the cancer class in [0, 1]")
    return y.astype(int), s


THRESHOLD_RULES = ("tolerance", "conformal", "highest")


def choose_threshold(
    y_true, p, target_sensitivity: float = 0.95, rule: str = "highest", confidence: float = 0.9
) -> float:
    """Operating point for deployment, to be chosen on a validation split.

    Three rules, from the most to the least cautious; each takes the k-th lowest tumour score of
    the ``n`` validation tumours as the threshold (tumours exchangeable with the validation ones):

    * ``tolerance`` (the runs' default): the largest k for which the sensitivity on *new* tumours
      reaches the target with probability >= ``confidence`` (Wilks' distribution-free tolerance
      limit: the coverage of the k-th lowest score is Beta(n + 1 - k, k)). With 50 tumours at
      0.95 / 0.9 that is the lowest tumour score; when even k = 1 falls short (fewer than ~45
      tumours), the lowest score, with a warning: the guarantee needs more labelled tumours.
    * ``conformal``: k = floor((n + 1) * (1 - target)): the *expected* sensitivity meets the
      target, but with 50 tumours one calibration in two lands below it.
    * ``highest``, described below: no margin at all.

    Returns the highest threshold ``t`` such that predicting cancer for
    ``p >= t`` reaches ``target_sensitivity`` on ``(y_true, p)``: among all
    thresholds meeting the sensitivity target it has the fewest false alarms
    (highest specificity). Tied scores are handled by ``roc_curve``, which
    only proposes thresholds between distinct scores, so the returned value is
    always one of the observed scores and every tie is on the same side.

    Note that the highest such threshold has no margin: on new data a tumour
    scored just below the weakest detected validation tumour is missed, so the
    test sensitivity of this point is expected to be somewhat below target.

    If ``y_true`` contains a single class, sensitivity (or specificity) is
    undefined and no threshold can be tuned: 0.5 is returned with a warning.
    """
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    y, s = _check_binary(y_true, p)
    if np.unique(y).size < 2:
        warnings.warn(
            "choose_threshold: only one class in y_true, sensitivity cannot be tuned; falling back to threshold 0.5",
            RuntimeWarning,
            stacklevel=2,
        )
        return 0.5
    positives = np.sort(s[y == 1])
    if rule == "conformal":
        k = int(np.floor((len(positives) + 1) * (1.0 - target_sensitivity) + 1e-9))
        return float(positives[max(k, 1) - 1])
    if rule == "tolerance":
        from scipy.stats import beta

        n = len(positives)
        met = [k for k in range(1, n + 1) if beta.sf(target_sensitivity, n + 1 - k, k) >= confidence]
        if not met:
            warnings.warn(
                f"choose_threshold: {n} tumours cannot show sensitivity >= {target_sensitivity} with confidence "
                f"{confidence} (P = {beta.sf(target_sensitivity, n, 1):.2f} at the lowest tumour score, used as threshold)",
                RuntimeWarning,
                stacklevel=2,
            )
        return float(positives[(met[-1] if met else 1) - 1])
    if rule != "highest":
        raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    # Thresholds are decreasing, tpr is non-decreasing: the first index that meets
    # the target is the highest admissible threshold. thresholds[0] is +inf with
    # tpr 0, never selected because target > 0. The tolerance only absorbs
    # floating-point rounding of tps / n_pos (e.g. 19 / 20 vs 0.95).
    _, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    idx = int(np.flatnonzero(tpr >= target_sensitivity - 1e-12)[0])
    return float(thresholds[idx])


def expected_calibration_error(y_true, p, n_bins: int = 10) -> float:
    """Expected calibration error of the cancer probability (torchmetrics' binary L1 ECE).

    Equal-width bins on ``[0, 1]``; per bin, the absolute gap between the observed cancer
    frequency and the mean predicted probability, weighted by the bin's share of the samples.
    Sensitive to ``n_bins`` on small splits: compare ECEs at equal ``n_bins``.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y, s = _check_binary(y_true, p)
    import torch
    from torchmetrics.functional.classification import binary_calibration_error

    return float(binary_calibration_error(torch.as_tensor(s), torch.as_tensor(y), n_bins=n_bins, norm="l1"))


def binary_metrics(
    y_true,
    p,
    threshold: float = 0.5,
    *,
    n_bins: int = 10,
    zero_division: float = 0.0,
) -> dict[str, float]:
    """All metrics of one split at one operating point, as a flat dict for logging.

    Threshold-free metrics (``roc_auc``, ``pr_auc``, ``brier``, ``ece``) use ``p``;
    the others use ``p >= threshold``. ``roc_auc`` and ``pr_auc`` are NaN when
    ``y_true`` has a single class (they are undefined, and 0/1 would bias fold
    means). Ratios with an empty denominator (e.g. precision when nothing is
    predicted cancer) are set to ``zero_division``; the 0.0 default follows
    sklearn and scores a model that never flags cancer as bad rather than
    silently dropping it from fold averages.

    ``pr_auc`` is average precision (step-wise, no optimistic interpolation);
    its chance level is the cancer prevalence, not 0.5.
    """
    y, s = _check_binary(y_true, p)
    y_pred = (s >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, y_pred, labels=_LABELS).ravel()

    # per class: precision = (npv, ppv), recall = (specificity, sensitivity)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, y_pred, labels=_LABELS, average=None, zero_division=zero_division
    )
    f2 = fbeta_score(y, y_pred, beta=2.0, labels=_LABELS, pos_label=1, zero_division=zero_division)
    with warnings.catch_warnings():
        # single-class y_true: sklearn warns and averages the recall of the present class
        warnings.simplefilter("ignore")
        balanced_accuracy = balanced_accuracy_score(y, y_pred)

    both_classes = np.unique(y).size == 2
    return {
        "sensitivity": float(recall[1]),
        "specificity": float(recall[0]),
        "precision": float(precision[1]),
        "npv": float(precision[0]),
        "f1": float(f1[1]),
        "f2": float(f2),
        "accuracy": float(accuracy_score(y, y_pred)),
        "balanced_accuracy": float(balanced_accuracy),
        "roc_auc": float(roc_auc_score(y, s)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both_classes else float("nan"),
        "brier": float(brier_score_loss(y, s, pos_label=1)),
        "ece": expected_calibration_error(y, s, n_bins=n_bins),
        "threshold": float(threshold),
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
        "n": int(y.size),
    }


def confusion_counts(y_true, y_pred, class_names: tuple[str, str] = CLASS_NAMES) -> pd.DataFrame:
    """Labelled 2x2 confusion matrix (rows: true class, columns: predicted class).

    Both classes always appear, even when absent from the split, so tables of
    different folds can be summed or compared cell by cell.
    """
    cm = confusion_matrix(np.asarray(y_true).ravel(), np.asarray(y_pred).ravel(), labels=_LABELS)
    return pd.DataFrame(
        cm,
        index=pd.Index(list(class_names), name="true"),
        columns=pd.Index(list(class_names), name="predicted"),
    )
