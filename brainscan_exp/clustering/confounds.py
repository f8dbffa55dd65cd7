"""Cheap per-image nuisance variables, and how strongly clusters follow them.

Public MRI collections mix scanners, contrasts, sizes and slice orientations, often unevenly
across classes. If clusters track brightness or orientation more than the label, pseudo-labels
from them teach the model the acquisition, not the tumour; these measures make that visible.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats.contingency import association

from .estimators import UNLABELLED

__all__ = [
    "confound_association",
    "confound_table",
    "cramers_v",
    "estimate_orientation",
    "eta_squared",
    "image_confounds",
    "otsu_threshold",
]

ORIENTATIONS = ("axial", "coronal", "sagittal", "unknown")


def otsu_threshold(image: np.ndarray) -> int:
    """Otsu's threshold of a uint8 image (pixels ``> t`` are foreground): the dark background of
    an MRI slice and the head form the two modes it separates. scikit-image is not a
    dependency, and the method is a few lines on the histogram."""
    p = np.bincount(image.ravel(), minlength=256) / image.size
    omega = np.cumsum(p)  # share of pixels <= t
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between_var = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    return int(np.argmax(np.nan_to_num(between_var)))


def _mirror_correlation(crop: np.ndarray, axis: int) -> float:
    """Pearson correlation of a crop with its mirror image: 1 for a perfectly symmetric crop."""
    a = crop.astype(float).ravel()
    b = np.flip(crop, axis=axis).astype(float).ravel()
    if a.std() == 0:
        return np.nan
    return float(np.corrcoef(a, b)[0, 1])


def estimate_orientation(
    lr_symmetry: float,
    ud_symmetry: float,
    symmetric: float = 0.8,
    asymmetric: float = 0.5,
) -> str:
    """Heuristic slice orientation from mirror symmetry of the head, assuming the usual display
    (left-right horizontal, head upright). It flags mixed orientations; it is not a classifier.

    * left-right asymmetric (face on one side) -> ``sagittal``;
    * left-right and up-down symmetric (an oval) -> ``axial``;
    * left-right symmetric, up-down not (crown above, neck below) -> ``coronal``;
    * anything in between, or NaN -> ``unknown``.
    """
    if not (np.isfinite(lr_symmetry) and np.isfinite(ud_symmetry)):
        return "unknown"
    if lr_symmetry < asymmetric:
        return "sagittal"
    if lr_symmetry >= symmetric:
        if ud_symmetry >= symmetric:
            return "axial"
        if ud_symmetry < asymmetric:
            return "coronal"
    return "unknown"


def image_confounds(image: np.ndarray) -> dict[str, float | str]:
    """Confounds of one greyscale uint8 slice (H, W).

    The foreground (head) is the pixels above Otsu's threshold; its bounding box spans the 1st
    to 99th percentile of foreground coordinates, so stray bright pixels (labels, noise) do not
    stretch it. Foreground statistics are NaN for an empty foreground.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a greyscale uint8 (H, W) array, got {image.dtype} {image.shape}")
    height, width = image.shape
    foreground = image > otsu_threshold(image)
    values = image[foreground].astype(float)
    row = {
        "height": float(height),
        "width": float(width),
        "mean_intensity": float(image.mean()),
        "std_intensity": float(image.std()),
        "fg_mean_intensity": float(values.mean()) if values.size else np.nan,
        "fg_std_intensity": float(values.std()) if values.size else np.nan,
        "fg_fraction": float(foreground.mean()),
        "bbox_aspect": np.nan,
        "lr_symmetry": np.nan,
        "ud_symmetry": np.nan,
    }
    if values.size:
        rows, cols = np.nonzero(foreground)
        top, bottom = np.percentile(rows, [1, 99]).round().astype(int)
        left, right = np.percentile(cols, [1, 99]).round().astype(int)
        crop = image[top : bottom + 1, left : right + 1]
        row["bbox_aspect"] = crop.shape[0] / crop.shape[1]
        row["lr_symmetry"] = _mirror_correlation(crop, axis=1)
        row["ud_symmetry"] = _mirror_correlation(crop, axis=0)
    row["orientation"] = estimate_orientation(row["lr_symmetry"], row["ud_symmetry"])
    return row


def confound_table(images: Iterable[np.ndarray], ids: Sequence[Hashable] | None = None) -> pd.DataFrame:
    """One row of :func:`image_confounds` per image, indexed by ``ids`` (or by position)."""
    table = pd.DataFrame([image_confounds(image) for image in images])
    if ids is not None:
        table.index = pd.Index(ids, name="id")
    table["orientation"] = pd.Categorical(table["orientation"], categories=ORIENTATIONS)
    return table


def eta_squared(values, groups) -> float:
    """Share of the variance of ``values`` explained by ``groups`` (one-way ANOVA η²); NaN
    values are dropped, NaN if no variance is left."""
    frame = pd.DataFrame({"value": np.asarray(values, dtype=float), "group": np.asarray(groups)}).dropna()
    if frame["value"].nunique() < 2:
        return np.nan
    grand_mean = frame["value"].mean()
    per_group = frame.groupby("group")["value"].agg(["mean", "size"])
    between = (per_group["size"] * (per_group["mean"] - grand_mean) ** 2).sum()
    total = ((frame["value"] - grand_mean) ** 2).sum()
    return float(between / total)


def cramers_v(a, b) -> float:
    """Cramér's V between two categorical variables; NaN if either has a single level."""
    table = pd.crosstab(np.asarray(a), np.asarray(b))
    if min(table.shape) < 2:
        return np.nan
    return float(association(table.to_numpy(), method="cramer"))


def confound_association(
    clusters,
    confounds: pd.DataFrame,
    labels=None,
    eta2_threshold: float = 0.14,
    cramers_v_threshold: float = 0.3,
) -> pd.DataFrame:
    """Effect size of each confound across clusters: η² for numeric columns, Cramér's V for
    categorical ones; with ``labels``, a ``label`` row (Cramér's V over ``labels != -1``) to
    compare against. Rows of ``confounds`` align with ``clusters`` by position; noise counts as
    one more group (a confound can decide what is called noise).

    ``flagged`` marks a strong association: η² >= 0.14 is Cohen's "large"; V >= 0.3 is Cohen's
    "medium" for a two-column table (w = 0.3), a warning level since clusters that follow an
    acquisition variable this much are suspect. On the ``label`` row a flag is the wanted case.
    """
    clusters = np.asarray(clusters)
    if len(confounds) != len(clusters):
        raise ValueError(f"{len(confounds)} confound rows for {len(clusters)} cluster ids")
    rows = []
    if labels is not None:
        labels = np.asarray(labels)
        labelled = labels != UNLABELLED
        v_label = cramers_v(clusters[labelled], labels[labelled])
        rows.append(("label", "cramers_v", v_label, int(labelled.sum())))
    for name, column in confounds.items():
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            rows.append((name, "eta2", eta_squared(column, clusters), int(column.notna().sum())))
        else:
            rows.append((name, "cramers_v", cramers_v(clusters, column.astype(str)), len(column)))
    table = pd.DataFrame(rows, columns=["confound", "measure", "value", "n"]).set_index("confound")
    threshold = table["measure"].map({"eta2": eta2_threshold, "cramers_v": cramers_v_threshold})
    table["flagged"] = table["value"] >= threshold
    return table
