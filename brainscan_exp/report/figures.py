"""The deck's figures, drawn from the collected numbers in the deck's language.

Why: the stages' own figures are in English and sized for a screen; the deck needs the client's
language and one size. Each function takes plain tables and returns the PNG it wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from brainscan_exp.report.costs import LearningCurve
from brainscan_exp.report.strings import euros, number, text

DPI = 150


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def pipeline(steps: list[str], path: Path) -> Path:
    fig = Figure(figsize=(11, 2.2))
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_xlim(0, len(steps))
    ax.set_ylim(0, 1)
    for i, step in enumerate(steps):
        ax.add_patch(FancyBboxPatch((i + 0.06, 0.15), 0.78, 0.7, boxstyle="round,pad=0.02", fc="#dbe8f5", ec="#2b5d8a"))
        ax.text(i + 0.45, 0.5, step, ha="center", va="center", fontsize=10)
        if i < len(steps) - 1:
            ax.annotate("", (i + 1.05, 0.5), (i + 0.86, 0.5), arrowprops={"arrowstyle": "->", "lw": 1.5})
    return _save(fig, path)


def probe_bars(rows: pd.DataFrame, lang: str, path: Path) -> Path:
    """``rows``: label, auc, low, high (one bar per embedding variant)."""
    rows = rows.sort_values("auc")
    fig = Figure(figsize=(6.5, 0.35 * len(rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(rows))
    err = np.vstack([rows.auc - rows.low, rows.high - rows.auc])
    ax.barh(y, rows.auc, xerr=err, color="#4c72b0", capsize=3)
    ax.set_yticks(y, rows.label, fontsize=8)
    ax.set_xlim(max(0.5, float(rows.low.min()) - 0.05), 1.0)
    ax.set_xlabel(text(lang, "features_xlabel"))
    return _save(fig, path)


def forest(diffs: pd.DataFrame, metrics: list[str], lang: str, path: Path) -> Path:
    """Paired differences vs the reference, one panel per metric (``differences.csv`` columns)."""
    reference = diffs["reference"].iloc[0] if "reference" in diffs else "sup"
    regimes = list(pd.unique(diffs.regime))
    fig = Figure(figsize=(5.2 * len(metrics), 0.42 * len(regimes) + 1.6))
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    ypos = {r: i for i, r in enumerate(reversed(regimes))}
    for ax, metric in zip(axes, metrics):
        sub = diffs[diffs.metric == metric]
        ys = sub.regime.map(ypos).to_numpy()
        mean = sub.mean_diff.to_numpy(float)
        err = np.vstack([mean - sub.t_low.to_numpy(float), sub.t_high.to_numpy(float) - mean])
        sig = sub.significant.to_numpy(bool)
        ax.errorbar(mean, ys, xerr=np.nan_to_num(err), fmt="none", ecolor="black", capsize=3)
        ax.scatter(mean[sig], ys[sig], color="black", zorder=3, label=text(lang, "forest_sig"))
        ax.scatter(
            mean[~sig], ys[~sig], facecolor="white", edgecolor="black", zorder=3, label=text(lang, "forest_nonsig")
        )
        ax.axvline(0, color="grey", ls="--")
        ax.set_yticks(list(ypos.values()), list(ypos.keys()))
        ax.set_xlabel(text(lang, "forest_xlabel", metric=metric, reference=reference), fontsize=9)
    axes[0].legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def label_efficiency(panels: dict[str, pd.DataFrame], fits: dict[str, tuple[str, LearningCurve]], lang, path) -> Path:
    """One panel per dataset: ROC-AUC vs labels per regime with CIs, and the fitted curve."""
    fig = Figure(figsize=(5.2 * len(panels), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, table) in zip(axes, panels.items()):
        sub = table[table.metric == "roc_auc"]
        for regime, g in sub.groupby("regime", sort=False):
            g = g.sort_values("n_labels")
            (line,) = ax.plot(g.n_labels, g["mean"], marker="o", label=regime)
            ax.fill_between(g.n_labels, g.ci_low, g.ci_high, color=line.get_color(), alpha=0.15, lw=0)
        if name in fits:
            regime, curve = fits[name]
            n = np.geomspace(sub.n_labels.min(), sub.n_labels.max() * 5, 50)
            ax.plot(n, [curve.auc(v) for v in n], "k:", label=text(lang, "le_fit", regime=regime))
        ax.set_xscale("log")
        ax.set(xlabel=text(lang, "le_xlabel"), ylabel=text(lang, "le_ylabel"), title=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def score_histogram(p: np.ndarray, threshold: float, lang: str, path: Path) -> Path:
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    ax.hist(p, bins=40, color="#4c72b0")
    ax.axvline(threshold, color="crimson", ls="--", label=f"{text(lang, 'op_threshold')} {number(threshold, lang)}")
    ax.set(xlabel=text(lang, "op_xlabel"), ylabel=text(lang, "op_ylabel"))
    ax.legend()
    return _save(fig, path)


def cost_bars(options: list[dict], budget: float, lang: str, path: Path) -> Path:
    names = [o["name"] for o in options]
    fig = Figure(figsize=(8, 3.4))
    ax_cost, ax_hours = fig.subplots(1, 2)
    ax_cost.bar(names, [o["cost_eur"] for o in options], color="#4c72b0")
    ax_cost.axhline(budget, color="crimson", ls="--", label=euros(budget, lang))
    ax_cost.set_yscale("log")
    ax_cost.set_ylabel(text(lang, "scale_cost"))
    ax_cost.legend(fontsize=8)
    ax_hours.bar(names, [o["hours"] for o in options], color="#55a868")
    ax_hours.set_ylabel(text(lang, "scale_hours"))
    for ax in (ax_cost, ax_hours):
        ax.tick_params(axis="x", labelsize=7, rotation=15)
    return _save(fig, path)
