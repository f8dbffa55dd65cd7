"""Figures for looking at a clustering, each written to a PNG and returned as a Path.

Built on ``matplotlib.figure.Figure`` (no pyplot): no dependence on the interactive backend,
no global figure registry to leak in sweeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.preprocessing import StandardScaler

from .estimators import NOISE
from .selection import CRITERIA

__all__ = ["plot_cluster_mosaic", "plot_contingency", "plot_k_sweep", "plot_projections"]

MAX_CATEGORIES = 20
"""Above this many distinct values a float colouring is drawn as continuous (and a categorical
one gets no legend)."""

MISSING_LEVELS = {-1, "-1", "unknown", "unlabelled", "nan"}
"""Levels drawn in grey behind the others: noise, unlabelled, unknown."""


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _embed_2d(X: np.ndarray, method: str, random_state: int | None) -> np.ndarray:
    if method == "pca":
        return PCA(n_components=2, random_state=random_state).fit_transform(X)
    if method == "tsne":
        perplexity = min(30.0, (len(X) - 1) / 3)  # t-SNE needs perplexity < n_samples
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state)
        return tsne.fit_transform(X)
    if method == "umap":
        import umap  # slow import (numba); only paid when UMAP is asked for

        return umap.UMAP(n_components=2, random_state=random_state).fit_transform(X)
    raise ValueError(f"unknown projection method {method!r}; use 'pca', 'umap' or 'tsne'")


def _scatter(fig: Figure, ax, xy: np.ndarray, values) -> None:
    """Continuous colour bar for many-valued numbers; otherwise one colour per level, with
    noise / unlabelled / unknown in grey underneath."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and np.unique(values).size > MAX_CATEGORIES:
        points = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap="viridis", s=8)
        fig.colorbar(points, ax=ax, fraction=0.046)
        return
    levels = pd.Series(values).astype("category").cat.categories
    palette = colormaps["tab10" if len(levels) <= 10 else "tab20"]
    for i, level in enumerate(levels):
        mask = values == level
        missing = level in MISSING_LEVELS or str(level) in MISSING_LEVELS
        ax.scatter(
            xy[mask, 0],
            xy[mask, 1],
            s=8,
            label=str(level),
            color="lightgrey" if missing else palette(i % palette.N),
            zorder=1 if missing else 2,
        )
    if len(levels) <= MAX_CATEGORIES:
        ax.legend(fontsize=6, markerscale=1.5, loc="best", ncol=1 + len(levels) // 10)


def plot_projections(
    X,
    colourings: Mapping[str, Sequence],
    path: str | Path,
    methods: Sequence[str] = ("pca", "umap", "tsne"),
    random_state: int | None = 0,
    standardise: bool = True,
) -> Path:
    """Grid of 2-D projections of ``X``: one row per method, one column per colouring (e.g.
    cluster, label, a confound), so one sees which variable the structure follows, and that it
    is not an artefact of one projection. Pass ``standardise=False`` for an already reduced
    embedding, whose component variances carry the structure."""
    X = np.asarray(X, dtype=float)
    if standardise:
        X = StandardScaler().fit_transform(X)
    fig = Figure(figsize=(3.6 * len(colourings), 3.2 * len(methods)), layout="constrained")
    axes = fig.subplots(len(methods), len(colourings), squeeze=False)
    for row, method in enumerate(methods):
        xy = _embed_2d(X, method, random_state)
        for col, (name, values) in enumerate(colourings.items()):
            ax = axes[row, col]
            _scatter(fig, ax, xy, values)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{method}: {name}", fontsize=9)
    return _save(fig, path)


def plot_cluster_mosaic(
    thumbs: Sequence[np.ndarray],
    clusters,
    path: str | Path,
    per_cluster: int = 8,
    random_state: int | None = 0,
) -> Path:
    """Random thumbnails from each cluster, one row per cluster (noise last), on a fixed
    0-255 grey scale so brightness differences between clusters stay visible."""
    clusters = np.asarray(clusters)
    ids = sorted(set(clusters.tolist()) - {NOISE}) + ([NOISE] if NOISE in clusters else [])
    rng = np.random.default_rng(random_state)
    fig = Figure(figsize=(1.1 * per_cluster, 1.2 * len(ids)), layout="constrained")
    axes = fig.subplots(len(ids), per_cluster, squeeze=False)
    for row, cluster in enumerate(ids):
        members = np.flatnonzero(clusters == cluster)
        shown = rng.choice(members, size=min(per_cluster, members.size), replace=False)
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < shown.size:
                ax.imshow(thumbs[shown[col]], cmap="gray", vmin=0, vmax=255)
        name = "noise" if cluster == NOISE else f"cluster {cluster}"
        axes[row, 0].set_ylabel(f"{name}\nn={members.size}", fontsize=8)
    return _save(fig, path)


def plot_k_sweep(df: pd.DataFrame, path: str | Path, best_k: int | None = None) -> Path:
    """Each criterion against k (the table of :func:`select_k`), its preferred k starred and
    the selected ``best_k`` dashed: shows whether geometry and labels agree on k."""
    panels = [["silhouette"], ["davies_bouldin"], ["calinski_harabasz"], ["ari", "nmi"]]
    fig = Figure(figsize=(3.2 * len(panels), 3.0), layout="constrained")
    for ax, names in zip(fig.subplots(1, len(panels)), panels):
        for name in names:
            scores = df[name]
            ax.plot(df.index, scores, marker="o", ms=3, label=name)
            if scores.notna().any():
                pick = scores.idxmax() if CRITERIA[name] else scores.idxmin()
                ax.plot(pick, scores[pick], marker="*", ms=12, color="black", zorder=3)
        if best_k is not None:
            ax.axvline(best_k, ls="--", color="grey", lw=1)
        better = "higher" if CRITERIA[names[0]] else "lower"
        ax.set_title(f"{' / '.join(names)} ({better} is better)", fontsize=9)
        ax.set_xlabel("k")
        if len(names) > 1:
            ax.legend(fontsize=7)
    return _save(fig, path)


def plot_contingency(table: pd.DataFrame, path: str | Path) -> Path:
    """Cluster x class counts (a :func:`contingency_table`), coloured by the class shares among
    each cluster's labelled members so small clusters read as clearly as large ones; an
    ``unlabelled`` column is annotated but not coloured."""
    counts = table.to_numpy()
    is_class = np.asarray(table.columns != "unlabelled")
    labelled = counts[:, is_class].sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(is_class, counts / labelled, np.nan)
    fig = Figure(figsize=(1.2 * table.shape[1] + 2, 0.45 * table.shape[0] + 1.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(shares), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), count in np.ndenumerate(counts):
        dark = np.isfinite(shares[i, j]) and shares[i, j] > 0.6
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(table.shape[0]), ["noise" if r == NOISE else str(r) for r in table.index])
    ax.set_xlabel(table.columns.name or "class")
    ax.set_ylabel(table.index.name or "cluster")
    fig.colorbar(image, ax=ax, label="share of the cluster's labelled images")
    return _save(fig, path)
