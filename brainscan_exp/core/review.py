"""The train task's pool table: labels at the operating point, and which images a radiologist
should see first (near the threshold, or far from every labelled image). Plain arrays in and out.

(The predict task's triage under a reading budget is ``core.calibrate.triage``.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from brainscan_exp.evaluation import binary_metrics

CLASS_NAMES = ("normal", "cancer")


def ood_score(X_train: np.ndarray, X: np.ndarray, quantile: float = 0.95) -> np.ndarray:
    """Nearest-training-image cosine distance, divided by its ``quantile`` among training images
    (leave-one-out): above 1, an image is farther from the labelled set than most labelled images."""
    if len(X_train) < 3:
        return np.zeros(len(X))
    nn = NearestNeighbors(n_neighbors=2, metric="cosine").fit(X_train)
    own = nn.kneighbors(X_train)[0][:, 1]  # leave-one-out: skip the image itself
    scale = max(float(np.quantile(own, quantile)), 1e-9)
    return nn.kneighbors(X, n_neighbors=1)[0][:, 0] / scale


def review_table(
    files: np.ndarray,
    p: np.ndarray,
    threshold: float,
    X_train: np.ndarray,
    X_pool: np.ndarray,
    copy_of: np.ndarray,
    review_logit_band: float = 1.0,
    ood_quantile: float = 0.95,
) -> pd.DataFrame:
    """One row per pool file, labelled at ``threshold``.

    ``uncertainty`` is exp(-|log-odds(p) - log-odds(threshold)|): 1 on the operating point, towards 0
    far from it. ``review`` flags images whose log-odds lie within ``review_logit_band`` of the
    threshold's, and images far from the labelled data (``ood_score`` > 1)."""
    eps = 1e-6
    pc, t = np.clip(p, eps, 1 - eps), np.clip(threshold, eps, 1 - eps)
    distance = np.abs(np.log(pc / (1 - pc)) - np.log(t / (1 - t)))
    near_threshold = distance < review_logit_band
    ood = ood_score(X_train, X_pool, ood_quantile)
    far = ood > 1.0
    reason = np.where(
        near_threshold & far,
        "uncertain+far",
        np.where(near_threshold, "uncertain", np.where(far, "far from labelled data", "")),
    )
    return pd.DataFrame(
        {
            "file": files,
            "p_cancer": p,
            "label_pred": np.where(p >= threshold, CLASS_NAMES[1], CLASS_NAMES[0]),
            "uncertainty": np.exp(-distance),
            "ood_score": ood,
            "review": near_threshold | far,
            "review_reason": reason,
            "copy_of_labelled": copy_of,
        }
    )


def score_at_threshold(predictions: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> dict[str, float]:
    """Evaluation only, after fitting: the pool's truth against ``predictions`` at ``threshold``.
    Copies of labelled images are left out: they are known, and scoring them would flatter the model."""
    kept = predictions[predictions.copy_of_labelled.fillna("") == ""]
    merged = kept.merge(truth[["file", "label"]], on="file", how="inner")
    if merged.empty:
        raise ValueError("no predicted file has a truth row: the truth's 'file' column must be relative to the root")
    y = (merged.label == CLASS_NAMES[1]).astype(int).to_numpy()
    return binary_metrics(y, merged.p_cancer.to_numpy(), threshold) | {"n_scored": float(len(merged))}
