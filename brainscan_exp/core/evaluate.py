"""Scoring a pool's predictions against its truth, after they are written: one benchmark row.

Why a bootstrap CI on the ROC-AUC: a 1,400-image pool gives a tight interval, a 100-image outer
CV a wide one, and candidates are compared on their worst case, where that width matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class DefinitionOfDone:
    """Bars a pool's pre-labels must clear (the generalization issue's bar for an unseen pool)."""

    roc_auc: float = 0.92
    sensitivity: float = 0.90
    specificity: float = 0.50

    def met(self, row: dict) -> bool:
        return (
            row["roc_auc"] >= self.roc_auc
            and row["sensitivity"] >= self.sensitivity
            and row["specificity"] >= self.specificity
        )


def bootstrap_auc(
    y: np.ndarray, p: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the ROC-AUC, resampling within each class (both stay present)."""
    if n_boot <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    pos, neg = np.asarray(p)[np.asarray(y) == 1], np.asarray(p)[np.asarray(y) == 0]
    aucs = np.empty(n_boot)
    for b in range(n_boot):
        a, c = rng.choice(pos, len(pos)), rng.choice(neg, len(neg))
        # Mann-Whitney form of the AUC, ties counted half
        aucs[b] = np.mean(a[:, None] > c[None, :]) + 0.5 * np.mean(a[:, None] == c[None, :])
    lo, hi = np.quantile(aucs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def score_predictions(
    predictions: pd.DataFrame,
    truth: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    dod: DefinitionOfDone = DefinitionOfDone(),
) -> dict[str, float]:
    """``predictions`` (file, p_cancer, label_pred, triage[, label_source]) against ``truth``
    (file, label: cancer|normal). Copies of labelled images (``label_source=copy``) are left out:
    they are known, not predicted."""
    if "label_source" in predictions:
        predictions = predictions[predictions.label_source != "copy"]
    merged = predictions.merge(truth[["file", "label"]], on="file", how="inner", suffixes=("", "_true"))
    if merged.empty:
        raise ValueError("no predicted file has a truth row: the truth's 'file' column must match predictions.csv")
    y = (merged["label"] == "cancer").to_numpy(int)
    p = merged.p_cancer.to_numpy(float)
    called = merged.label_pred.to_numpy() == "cancer"
    row = {
        "n_scored": len(merged),
        "tumour_share": float(y.mean()),
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"),
        "sensitivity": float(called[y == 1].mean()) if y.any() else float("nan"),
        "specificity": float((~called[y == 0]).mean()) if (y == 0).any() else float("nan"),
        "review_share": float((merged.triage == "review").mean()) if "triage" in merged else 0.0,
    }
    row["auc_low"], row["auc_high"] = (
        bootstrap_auc(y, p, n_boot, seed=seed) if 0 < y.sum() < len(y) else (np.nan, np.nan)
    )
    if "triage" in merged:  # after the radiologist reads the review queue
        missed = (y == 1) & (merged.triage.to_numpy() == "normal")
        row["sensitivity_after_review"] = float(1 - missed[y == 1].mean()) if y.any() else float("nan")
    row["dod_met"] = dod.met(row)
    return row


def delivered_errors(predictions: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Evaluation only: wrong labels among what the client receives. An image sent to review is
    delivered with the reader's (assumed right) label; an expert-read or copied image with its
    known label; every other image with the model's. Unreadable images carry no label."""
    merged = predictions.merge(truth[["file", "label"]].rename(columns={"label": "label_true"}), on="file")
    labelled = merged[merged.triage != "unreadable"]
    delivered = np.where(labelled.triage == "review", labelled["label_true"], labelled.triage)
    truth_label = labelled["label_true"].to_numpy()
    missed = int(((truth_label == "cancer") & (delivered == "normal")).sum())
    false_alarms = int(((truth_label == "normal") & (delivered == "cancer")).sum())
    return {
        "delivered_n": float(len(labelled)),
        "delivered_missed": float(missed),
        "delivered_false_alarms": float(false_alarms),
        "delivered_error_rate": (missed + false_alarms) / max(len(labelled), 1),
    }
