"""Choosing the number of clusters.

k is selected by agreement with the labelled subset (ARI, then NMI), not by silhouette: the
task is to recover tumour vs normal, and the geometrically best k often splits something else
(scanner, contrast, slice level). The internal criteria and their picks are kept alongside, so
a disagreement between the two is visible rather than hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from .estimators import NOISE
from .metrics import agreement_scores, internal_scores

__all__ = ["KSweep", "select_k"]

# criterion -> True if higher is better
CRITERIA: dict[str, bool] = {
    "silhouette": True,
    "davies_bouldin": False,
    "calinski_harabasz": True,
    "ari": True,
    "nmi": True,
}


@dataclass
class KSweep:
    """``table``: one row per k (index ``k``); ``picks``: the k each criterion prefers (a
    criterion that is NaN for every k is left out); ``best_k``: the selected k (best ARI, ties
    broken by NMI then the smaller k), None without labelled points."""

    table: pd.DataFrame
    picks: dict[str, int]
    best_k: int | None


def select_k(
    X,
    y_partial,
    candidate_ks: Iterable[int] = range(2, 11),
    make: Callable[[int], object] | None = None,
    random_state: int | None = 0,
) -> KSweep:
    """Fit ``make(k)`` on ``X`` for each candidate k and score it.

    ``y_partial`` uses -1 for the images whose label may not be seen; only the others enter
    ARI/NMI/purity. ``make`` defaults to KMeans. Internal scores are computed on the fitted
    estimator's ``embedding_`` when it has one (a :class:`ReducedClusterer`), i.e. in the space
    that was clustered.
    """
    X = np.asarray(X)
    if make is None:

        def make(k: int):
            return KMeans(n_clusters=k, n_init=10, random_state=random_state)

    rows = []
    for k in candidate_ks:
        model = make(k)
        labels = np.asarray(model.fit_predict(X))
        rows.append(
            {
                "k": k,
                "n_clusters": int(np.unique(labels[labels != NOISE]).size),
                "noise_share": float(np.mean(labels == NOISE)),
                **internal_scores(getattr(model, "embedding_", X), labels),
                **agreement_scores(labels, y_partial),
            }
        )
    table = pd.DataFrame(rows).set_index("k")

    picks = {}
    for name, higher_is_better in CRITERIA.items():
        scores = table[name].dropna()
        if not scores.empty:
            picks[name] = int(scores.idxmax() if higher_is_better else scores.idxmin())

    ranked = table.reset_index().sort_values(["ari", "nmi", "k"], ascending=[False, False, True])
    ranked = ranked.dropna(subset=["ari"])
    best_k = int(ranked["k"].iloc[0]) if not ranked.empty else None
    return KSweep(table=table, picks=picks, best_k=best_k)
