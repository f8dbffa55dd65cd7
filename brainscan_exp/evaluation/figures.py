"""Evaluation figures, each written to a PNG (for MLflow artifacts) and returned as a Path.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``), not
``pyplot``: nothing depends on the interactive backend, and figures are freed
when the function returns (no global figure registry to leak in long sweeps).
Curves are drawn from sklearn's ``roc_curve`` / ``calibration_curve`` rather than
its ``*Display`` classes, whose keyword arguments changed across sklearn versions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import ConfusionMatrixDisplay, roc_auc_score, roc_curve

from .aggregate import LOWER_IS_BETTER
from .metrics import CLASS_NAMES, _check_binary, expected_calibration_error

__all__ = [
    "plot_confusion_matrix",
    "plot_forest",
    "plot_label_efficiency",
    "plot_reliability_diagram",
    "plot_roc_curve",
]

Curves = Mapping[str, tuple[Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _curve_style(n_curves: int) -> dict:
    """Many CV folds of one regime: thin translucent lines, so the spread is what one sees."""
    return {"lw": 1.0, "alpha": 0.5} if n_curves > 6 else {"lw": 1.8, "alpha": 0.9}


def plot_confusion_matrix(
    y_true,
    y_pred,
    path: str | Path,
    class_names: tuple[str, str] = CLASS_NAMES,
    title: str | None = None,
) -> Path:
    """Annotated 2x2 count matrix (rows true, columns predicted); both classes always shown."""
    fig = Figure(figsize=(4, 3.6))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        np.asarray(y_true).ravel(),
        np.asarray(y_pred).ravel(),
        labels=[0, 1],
        display_labels=list(class_names),
        values_format="d",
        cmap="Blues",
        colorbar=False,
        ax=ax,
    )
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_roc_curve(curves: Curves, path: str | Path, title: str | None = None) -> Path:
    """ROC curves, AUC in the legend; ``curves`` maps a label (fold or regime) to ``(y_true, p)``.

    With several curves the legend title gives mean ± sd of the AUCs (meaningful
    for the folds of one regime). Single-class entries have no ROC curve and are
    skipped (noted in the legend title).
    """
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    style = _curve_style(len(curves))
    skipped, aucs = [], []
    for name, (y, p) in curves.items():
        y, p = _check_binary(y, p)
        if np.unique(y).size < 2:
            skipped.append(str(name))
            continue
        fpr, tpr, _ = roc_curve(y, p)
        aucs.append(roc_auc_score(y, p))
        ax.plot(fpr, tpr, label=f"{name} (AUC={aucs[-1]:.3f})", **style)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity (FPR)", ylabel="sensitivity (TPR)")
    ax.set_aspect("equal")
    legend_title = [f"AUC {np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f} (mean ± sd)"] if len(aucs) > 1 else []
    if skipped:
        legend_title.append(f"skipped (one class): {', '.join(skipped)}")
    ax.legend(loc="lower right", fontsize="small", title="\n".join(legend_title) or None, title_fontsize="small")
    ax.set_title(title or "ROC")
    return _save(fig, path)


def plot_reliability_diagram(curves: Curves, path: str | Path, n_bins: int = 10, title: str | None = None) -> Path:
    """Observed cancer frequency vs mean predicted probability (equal-width bins), ECE in the legend.

    Below the diagonal = over-confident in cancer. Empty bins are not drawn.
    """
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    style = _curve_style(len(curves))
    for name, (y, p) in curves.items():
        y, p = _check_binary(y, p)
        frac_pos, mean_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
        ece = expected_calibration_error(y, p, n_bins=n_bins)
        ax.plot(mean_pred, frac_pos, marker="o", ms=3, label=f"{name} (ECE={ece:.3f})", **style)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted P(cancer)", ylabel="observed cancer frequency")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title or "Reliability diagram")
    return _save(fig, path)


def plot_forest(
    diff_table: pd.DataFrame,
    path: str | Path,
    metrics: Sequence[str] | None = None,
    ci: str = "t",
) -> Path:
    """Forest plot of :func:`~brainscan_exp.evaluation.aggregate.paired_differences`.

    One panel per metric, one row per regime: mean difference vs the reference with
    its CI (``ci="t"``: the t interval, Nadeau-Bengio corrected when the table says so;
    ``ci="bootstrap"``: percentile bootstrap), vertical line at 0 (no difference).
    Filled markers are significant after Holm.
    """
    if ci not in ("t", "bootstrap"):
        raise ValueError("ci must be 't' or 'bootstrap'")
    low_col, high_col = ("t_low", "t_high") if ci == "t" else ("boot_low", "boot_high")
    metrics = list(metrics) if metrics is not None else list(pd.unique(diff_table["metric"]))
    ncols = min(len(metrics), 3)
    nrows = math.ceil(len(metrics) / ncols)
    regimes = list(pd.unique(diff_table["regime"]))
    fig = Figure(figsize=(4.2 * ncols, 0.5 * len(regimes) * nrows + 1.4 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    ypos = {r: i for i, r in enumerate(reversed(regimes))}
    for ax, metric in zip(axes, metrics):
        sub = diff_table[diff_table["metric"] == metric]
        ys = sub["regime"].map(ypos).to_numpy()
        mean = sub["mean_diff"].to_numpy(dtype=float)
        err = np.vstack([mean - sub[low_col].to_numpy(dtype=float), sub[high_col].to_numpy(dtype=float) - mean])
        ax.errorbar(mean, ys, xerr=np.nan_to_num(err), fmt="none", ecolor="black", capsize=3, lw=1.2)
        sig = sub["significant"].to_numpy(dtype=bool) if "significant" in sub else np.zeros(len(sub), bool)
        ax.scatter(mean[sig], ys[sig], color="black", zorder=3, label="significant (Holm)")
        ax.scatter(mean[~sig], ys[~sig], facecolor="white", edgecolor="black", zorder=3, label="not significant")
        ax.axvline(0.0, color="grey", ls="--", lw=1)
        ax.set_yticks(list(ypos.values()), list(ypos.keys()))
        ax.set_ylim(-0.6, len(regimes) - 0.4)
        better = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        ax.set_title(f"{metric} ({better})", fontsize="medium")
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    reference = diff_table["reference"].iloc[0] if "reference" in diff_table and len(diff_table) else "reference"
    fig.suptitle(f"Paired difference vs {reference} (regime − {reference})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=2, fontsize="small", bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path)


def plot_label_efficiency(table: pd.DataFrame, path: str | Path, metric: str = "roc_auc") -> Path:
    """Metric vs number of labels per regime, with its CI band, from
    :func:`~brainscan_exp.evaluation.aggregate.label_efficiency_table`.

    The x axis is logarithmic when label budgets span more than a decade
    (typical: 10, 25, 50, 100, ... labels).
    """
    sub = table[table["metric"] == metric]
    if sub.empty:
        raise KeyError(f"metric {metric!r} not in the label-efficiency table")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for regime, g in sub.groupby("regime", sort=False):
        g = g.sort_values("n_labels")
        x = g["n_labels"].to_numpy(dtype=float)
        (line,) = ax.plot(x, g["mean"], marker="o", label=str(regime))
        ax.fill_between(x, g["ci_low"], g["ci_high"], color=line.get_color(), alpha=0.2, lw=0)
    n = sub["n_labels"].to_numpy(dtype=float)
    if n.min() > 0 and n.max() / n.min() > 10:
        ax.set_xscale("log")
    ax.set(xlabel="number of labelled slices", ylabel=metric, title=f"Label efficiency ({metric})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)
