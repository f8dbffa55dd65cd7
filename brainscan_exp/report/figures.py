"""The deck's figures, drawn at the size they take on the slide, in the deck's language.

Why: a figure drawn for a screen and shrunk onto a slide has tick labels nobody can read. Each
function takes plain tables and the size in inches the slide gives it, draws with fonts of at
least ``FONT`` pt, and writes a PNG that records its width in inches and its smallest font
(``min_font_pt``, ``width_in`` in the PNG's text chunks): the deck's test reads them back and
checks the font at the size the picture is placed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.text
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from PIL import Image

from brainscan_exp.report.costs import LearningCurve
from brainscan_exp.report.strings import euros, number, term, text

DPI = 150
FONT = 14  # pt at placed size; the rendered-deck test requires >= 12
SMALL = 13  # legends and secondary labels
RC = {"font.size": FONT, "axes.titlesize": FONT, "axes.labelsize": FONT, "legend.fontsize": SMALL}
BLUE, GREEN, RED, GREY = "#2b5d8a", "#55a868", "#c0392b", "#888888"


def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


class _DecimalComma(ticker.Formatter):
    """French tick labels: a matplotlib formatter's text with a decimal comma and a true minus."""

    def __init__(self, inner: ticker.Formatter):
        self.inner = inner

    def __call__(self, x, pos=None) -> str:
        return self.inner(x, pos).replace(".", ",").replace("-", "\u2212")

    def set_locs(self, locs) -> None:
        self.inner.set_locs(locs)

    def set_axis(self, axis) -> None:
        super().set_axis(axis)
        self.inner.set_axis(axis)


def localise(fig: Figure, lang: str) -> Figure:
    """Tick labels in the deck's number format (``0,05`` in French)."""
    if lang == "fr":
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                if isinstance(axis.get_major_formatter(), ticker.ScalarFormatter):
                    axis.set_major_formatter(_DecimalComma(axis.get_major_formatter()))
    return fig


def _plain_log_ticks(axis, lang: str, subs=(1.0, 2.0, 5.0)) -> None:
    """A log axis read as plain numbers (1, 2, 5, 10, 20, ...) instead of powers of ten."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: number(v, lang, 0 if v >= 1 else 2)))
    axis.set_minor_formatter(ticker.NullFormatter())


def min_font_pt(fig: Figure) -> float:
    """Smallest font size (pt, at the figure's own size) among the visible, non-empty texts."""
    fig.canvas.draw()
    hidden = set()  # an axis switched off keeps its (undrawn) tick labels and labels
    for ax in fig.axes:
        if not ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                hidden.update(id(t) for t in axis.get_ticklabels(which="both"))
                hidden.update((id(axis.label), id(axis.get_offset_text())))
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and t.get_window_extent().width > 0 and id(t) not in hidden
    ]
    return float(min(sizes)) if sizes else float("inf")


def _save(fig: Figure, path: Path, layout: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout:
        fig.tight_layout()
    width, _ = fig.get_size_inches()
    smallest = min_font_pt(fig)
    fig.savefig(path, dpi=DPI, metadata={"min_font_pt": f"{smallest:g}", "width_in": f"{width:g}"})
    return path


def placed_font_pt(png: Image.Image, placed_width_in: float) -> float | None:
    """The smallest font of a deck figure once placed ``placed_width_in`` wide; ``None`` for a PNG
    that is not one of these figures (no ``min_font_pt`` record)."""
    info = getattr(png, "text", None) or png.info
    if "min_font_pt" not in info or "width_in" not in info:
        return None
    return float(info["min_font_pt"]) * placed_width_in / float(info["width_in"])


def photos(images: list[tuple[np.ndarray, np.ndarray]], titles: tuple[str, str], size, path: Path) -> Path:
    """A few large image pairs side by side (original | copy), one row per pair."""
    fig = _figure(size)
    axes = np.atleast_2d(fig.subplots(len(images), 2))
    for row, (a, b) in zip(axes, images):
        for ax, im in zip(row, (a, b)):
            ax.imshow(im, cmap="gray")
            ax.set_axis_off()
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=FONT)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93, wspace=0.03, hspace=0.05)
    return _save(fig, path, layout=False)


def pipeline(steps: list[str], size, path: Path) -> Path:
    fig = _figure(size)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_xlim(0, len(steps))
    ax.set_ylim(0, 1)
    width_chars = int(size[0] / len(steps) * 72 * 0.8 / (0.55 * FONT))  # characters a box holds per line
    for i, step in enumerate(steps):
        ax.add_patch(FancyBboxPatch((i + 0.05, 0.05), 0.8, 0.9, boxstyle="round,pad=0.02", fc="#dbe8f5", ec=BLUE))
        wrapped = "\n".join(textwrap.fill(part, width_chars) for part in step.split("\n"))
        ax.text(i + 0.45, 0.5, wrapped, ha="center", va="center", fontsize=FONT)
        if i < len(steps) - 1:
            ax.annotate("", (i + 1.04, 0.5), (i + 0.87, 0.5), arrowprops={"arrowstyle": "->", "lw": 2})
    fig.subplots_adjust(0, 0, 1, 1)
    return _save(fig, path, layout=False)


def hbars(
    labels: list[str],
    values: np.ndarray,
    xlabel: str,
    size,
    path: Path,
    low=None,
    high=None,
    highlight=None,
    xlim=None,
    lang: str = "en",
) -> Path:
    """Horizontal bars, the largest on top; ``highlight``: bars drawn in the accent colour."""
    with matplotlib.rc_context(RC):
        fig = _figure(size)
        ax = fig.subplots()
        y = np.arange(len(labels))
        colors = [RED if highlight is not None and highlight[i] else BLUE for i in range(len(labels))]
        err = None if low is None else np.vstack([values - low, high - values])
        ax.barh(y, values, xerr=err, color=colors, capsize=4)
        ax.set_yticks(y, labels)
        ax.set_xlabel(xlabel)
        if xlim:
            ax.set_xlim(*xlim)
        ax.grid(axis="x", alpha=0.3)
        return _save(localise(fig, lang), path)


def forest(diffs: pd.DataFrame, lang: str, size, path: Path) -> Path:
    """ROC-AUC paired differences vs supervised, one line per method (``differences.csv``)."""
    sub = diffs[diffs.metric == "roc_auc"]
    regimes = list(pd.unique(sub.regime))
    with matplotlib.rc_context(RC):
        fig = _figure(size)
        ax = fig.subplots()
        ypos = {r: i for i, r in enumerate(reversed(regimes))}
        ys = sub.regime.map(ypos).to_numpy()
        mean = sub.mean_diff.to_numpy(float)
        err = np.vstack([mean - sub.t_low.to_numpy(float), sub.t_high.to_numpy(float) - mean])
        sig = sub.significant.astype(bool).to_numpy()
        ax.errorbar(mean, ys, xerr=np.nan_to_num(err), fmt="none", ecolor="black", capsize=4)
        ax.scatter(mean[sig], ys[sig], s=60, color="black", zorder=3, label=text(lang, "forest_sig"))
        ax.scatter(
            mean[~sig],
            ys[~sig],
            s=60,
            facecolor="white",
            edgecolor="black",
            zorder=3,
            label=text(lang, "forest_nonsig"),
        )
        ax.axvline(0, color=GREY, ls="--")
        ax.set_yticks(list(ypos.values()), [term(lang, r) for r in ypos])
        ax.set_xlabel(text(lang, "forest_xlabel"))
        ax.legend(loc="best")
        return _save(localise(fig, lang), path)


def label_efficiency(
    curves: dict[str, pd.DataFrame], fits: dict[str, LearningCurve], names: dict[str, str], lang, size, path
) -> Path:
    """ROC-AUC against labels, one line per dataset (mean and 95 % band), with its fitted curve."""
    with matplotlib.rc_context(RC):
        fig = _figure(size)
        ax = fig.subplots()
        for name, g in curves.items():
            g = g.sort_values("n_labels")
            (line,) = ax.plot(g.n_labels, g["mean"], marker="o", lw=2, label=names[name])
            ax.fill_between(g.n_labels, g.ci_low, g.ci_high, color=line.get_color(), alpha=0.15, lw=0)
            if name in fits:
                n = np.geomspace(g.n_labels.min(), g.n_labels.max() * 3, 50)
                ax.plot(n, [fits[name].auc(v) for v in n], ":", color=line.get_color())
        ax.plot([], [], "k:", label=text(lang, "le_fit"))
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, lang)
        ax.set(xlabel=text(lang, "le_xlabel"), ylabel=text(lang, "le_ylabel"))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        return _save(localise(fig, lang), path)


def score_histogram(p: np.ndarray, threshold: float, lang: str, size, path: Path) -> Path:
    with matplotlib.rc_context(RC):
        fig = _figure(size)
        ax = fig.subplots()
        ax.hist(p, bins=30, color=BLUE)
        ax.axvline(threshold, color=RED, ls="--", lw=2, label=f"{text(lang, 'op_threshold')} {number(threshold, lang)}")
        ax.set(xlabel=text(lang, "op_xlabel"), ylabel=text(lang, "op_ylabel"))
        ax.legend()
        return _save(localise(fig, lang), path)


def cost_bars(options: list[dict], budget: float, lang: str, size, path: Path) -> Path:
    """Cost (log axis, said in its label) and hours per compute option, with the budget line."""
    names = [term(lang, o["name"]) for o in options]
    y = np.arange(len(options))[::-1]
    with matplotlib.rc_context(RC):
        fig = _figure(size)
        ax_cost, ax_hours = fig.subplots(2, 1)
        ax_cost.barh(y, [o["cost_eur"] for o in options], color=BLUE)
        ax_cost.axvline(budget, color=RED, ls="--", lw=2, label=text(lang, "scale_budget", budget=euros(budget, lang)))
        ax_cost.set_xscale("log")
        _plain_log_ticks(ax_cost.xaxis, lang, subs=(1.0,))
        ax_cost.set_xlabel(text(lang, "scale_cost"))
        ax_cost.legend(loc="center right")
        for yi, o in zip(y, options):
            ax_cost.text(o["cost_eur"] * 1.15, yi, euros(o["cost_eur"], lang), va="center")
        ax_hours.barh(y, [o["hours"] for o in options], color=GREEN)
        ax_hours.set_xlabel(text(lang, "scale_hours"))
        for ax in (ax_cost, ax_hours):
            ax.set_yticks(y, names)
        return _save(localise(fig, lang), path)


def review_bars(rows: pd.DataFrame, lang: str, size, path: Path) -> Path:
    """Wrong delivered labels (%) per scenario, today's one-shot review against the loop."""
    rows = rows.reset_index(drop=True)
    y = np.arange(len(rows))[::-1]
    h = 0.38
    with matplotlib.rc_context(RC):
        fig = _figure(size)
        ax = fig.subplots()
        ax.barh(y + h / 2, 100 * rows.error_rate_before, h, color=GREY, label=text(lang, "review_before"))
        ax.barh(y - h / 2, 100 * rows.error_rate_after, h, color=BLUE, label=text(lang, "review_after"))
        ax.set_yticks(y, [term(lang, s) for s in rows.scenario])
        ax.set_xlabel(text(lang, "review_ylabel"))
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=1, frameon=False)  # above: no bar hidden
        ax.grid(axis="x", alpha=0.3)
        return _save(localise(fig, lang), path)
