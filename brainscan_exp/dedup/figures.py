"""A mosaic of the least certain confirmed pairs, for a person to judge.

Why: a false pair merges two groups, and the thresholds were set on one dataset. Looking at the
confirmed pairs with the lowest score (the share of pixel-exact inliers) is the fastest way to see
whether the boundary still holds on new data. Built on ``matplotlib.figure.Figure`` (no pyplot), so
it needs no display and leaks no figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .hashing import load_grey

__all__ = ["plot_uncertain_pairs"]


def plot_uncertain_pairs(
    paths: Sequence[str | Path],
    pairs: pd.DataFrame,
    out_png: str | Path,
    n: int = 12,
    thumb: int = 192,
    columns: int = 3,
) -> Path:
    """Draw the ``n`` confirmed pairs of ``pairs`` (a finder's ``pairs_``) with the lowest ``score``,
    each as image i beside image j, titled with the score, precise inliers and transform, into
    ``out_png``; returns its path. With no confirmed pair the figure says so."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    conf = pairs[pairs.confirmed].sort_values(["score", "inliers"]).head(n)
    rows = max(1, -(-len(conf) // columns))
    fig = Figure(figsize=(columns * 4.2, rows * 2.6 + 0.5))
    if conf.empty:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no confirmed pair", ha="center", va="center")
        ax.axis("off")
    for k, row in enumerate(conf.itertuples(index=False)):
        a = load_grey(paths[int(row.i)], thumb)
        b = load_grey(paths[int(row.j)], thumb)
        gap = np.full((thumb, 6), 255, np.uint8)
        ax = fig.add_subplot(rows, columns, k + 1)
        ax.imshow(np.hstack([a, gap, b]), cmap="gray", vmin=0, vmax=255)
        mirror = " mirror" if row.mirror else ""
        ax.set_title(
            f"{int(row.i)} | {int(row.j)}  score {row.score:.2f}  inl {int(row.inliers)}\n"
            f"scale {row.scale_min:.2f}-{row.scale_max:.2f}{mirror}  ham {row.hamming:.0f}",
            fontsize=8,
        )
        ax.axis("off")
    fig.suptitle(f"{len(conf)} confirmed near-copy pairs with the lowest score (left: i, right: j)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    return out_png
