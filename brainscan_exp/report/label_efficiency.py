"""The label-efficiency summary: each regime's scores per label budget, from a CV run's folds.

Why: the curve is read in two places (the deck and the cost model's "what do more labels buy"),
from an MLflow run or from its saved JSON; one function makes both read the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("roc_auc", "sensitivity", "specificity")


def _ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = rng.choice(values, (n_boot, len(values))).mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def summarise_budgets(fold_metrics: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (regime, label budget, metric): mean labels seen, mean score and its 95 %
    percentile-bootstrap interval over folds (optimistic: folds of repeated CV are correlated)."""
    rows = []
    frame = fold_metrics.assign(label_budget=fold_metrics.label_budget.astype(str))
    for (regime, budget), group in frame.groupby(["regime", "label_budget"], sort=False):
        for metric in METRICS:
            values = group[metric].dropna().to_numpy(float)
            if not len(values):
                continue
            low, high = _ci(values, n_boot, seed)
            rows.append(
                {
                    "regime": regime,
                    "label_budget": budget,
                    "n_labels": float(group.n_labels.mean()),
                    "metric": metric,
                    "mean": float(values.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "n_folds": len(values),
                }
            )
    return pd.DataFrame(rows).sort_values(["regime", "metric", "n_labels"], kind="stable").reset_index(drop=True)
