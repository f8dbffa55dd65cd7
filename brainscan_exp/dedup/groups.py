"""Near-copy groups: connected components of the confirmed pairs.

Why components: copy-of-a-copy chains (a flip of a crop of an image) are one group even when the
two ends were never compared or matched too weakly. The flip side is that one false pair merges two
groups, which is why confirmation is strict.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["NO_GROUP", "connected_groups"]

NO_GROUP = -1
"""Group id of an image with no confirmed near copy (sklearn's noise convention, as DBSCAN)."""


def connected_groups(n: int, pairs: np.ndarray) -> np.ndarray:
    """Group id per image (``n`` images), from ``(m, 2)`` confirmed pairs.

    Groups are numbered 0, 1, ... in the order of their smallest member; images in no pair get
    :data:`NO_GROUP`.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    labels = np.full(n, NO_GROUP, dtype=np.int64)
    if n == 0 or len(pairs) == 0:
        return labels
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    grouped = sizes[comp] > 1
    # renumber components by their smallest member, skipping singletons
    first_member = {}
    for idx in np.flatnonzero(grouped):
        first_member.setdefault(int(comp[idx]), len(first_member))
    labels[grouped] = [first_member[int(c)] for c in comp[grouped]]
    return labels
