"""How good is a clustering: internally (geometry only) and against the labelled subset.

Both kinds are reported because they disagree on this data: the most compact partition of
MRI features is often by scanner or contrast, not by tumour, which only the labels reveal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.metrics.cluster import contingency_matrix

from .estimators import NOISE, UNLABELLED

__all__ = ["agreement_scores", "cluster_sizes", "contingency_table", "internal_scores"]


def internal_scores(X, labels) -> dict[str, float]:
    """Silhouette (higher better), Davies-Bouldin (lower), Calinski-Harabasz (higher) over the
    non-noise points; NaN when fewer than 2 clusters (or one point per cluster) remain, where
    the scores are undefined."""
    X = np.asarray(X)
    labels = np.asarray(labels)
    clustered = labels != NOISE
    X, labels = X[clustered], labels[clustered]
    n_clusters = np.unique(labels).size
    if not 2 <= n_clusters < len(labels):
        return {"silhouette": np.nan, "davies_bouldin": np.nan, "calinski_harabasz": np.nan}
    return {
        "silhouette": float(silhouette_score(X, labels)),
        "davies_bouldin": float(davies_bouldin_score(X, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(X, labels)),
    }


def agreement_scores(labels, y) -> dict[str, float]:
    """ARI, NMI and purity of the clusters against ``y`` over the labelled points (``y != -1``).

    Noise counts as one more cluster, so declaring hard points noise is not free. Purity is the
    share of labelled points in their cluster's majority class. NaN without labelled points.
    """
    labels = np.asarray(labels)
    y = np.asarray(y)
    labelled = y != UNLABELLED
    if not labelled.any():
        return {"ari": np.nan, "nmi": np.nan, "purity": np.nan}
    labels, y = labels[labelled], y[labelled]
    table = contingency_matrix(labels, y)
    return {
        "ari": float(adjusted_rand_score(y, labels)),
        "nmi": float(normalized_mutual_info_score(y, labels)),
        "purity": float(table.max(axis=1).sum() / table.sum()),
    }


def contingency_table(labels, y, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts of cluster (rows) x class (columns), plus an ``unlabelled`` column for ``y == -1``
    so the table also shows each cluster's full size. ``class_names[i]`` names class ``i``."""
    y = np.asarray(y)
    names = {UNLABELLED: "unlabelled"}
    if class_names is not None:
        names.update(enumerate(class_names))
    table = pd.crosstab(pd.Series(np.asarray(labels), name="cluster"), pd.Series(y, name="class"))
    columns = sorted(c for c in table.columns if c != UNLABELLED)
    if UNLABELLED in table.columns:
        columns.append(UNLABELLED)
    return table[columns].rename(columns=names)


def cluster_sizes(labels) -> pd.Series:
    """Number of points per cluster id (noise as -1), ordered by id."""
    return pd.Series(np.asarray(labels), name="cluster").value_counts().sort_index().rename("size")
