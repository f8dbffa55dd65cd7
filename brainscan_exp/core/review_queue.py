"""Which unread pool images a radiologist should read next: strategies for the review round trip.

Why several: no single rule wins everywhere. Reads near the threshold fix the model where it
hesitates, but on a small, shifted pool they chase noise; typical images (TypiClust, Hacohen,
Dekel and Weinshall, ICML 2022) teach more at low budgets; the safety queue removes the most
expected missed tumours today. The review benchmark runs them all through simulated readers and
picks by the worst case. Plain arrays in, indices and reasons out: no Hydra, no I/O.

Strategies (``strategy``; ``a+b`` splits the batch between ``a`` and ``b``). A
``final_strategy`` replaces it in the round that spends the rest of the budget: e.g.
``threshold`` then ``safety`` learns where the model hesitates, then spends the last reads as a
safety net on the auto-normal images most likely to be tumours, since no read is left after it.

* ``safety``: the auto-normal images most likely to be tumours (pool posterior ``q``);
* ``threshold``: the images whose score is nearest the operating point (log-odds);
* ``committee``: the images the inner models disagree on most (query by committee: the share of
  inner models calling cancer nearest one half, then the spread of their log-odds);
* ``random``: a uniform draw;
* ``typiclust``: the most typical image of each of the largest clusters without a known image;
* ``kcenter``: greedy k-centre, the image farthest from every known one, in turn.

A random share of every batch (``audit_share``, reason ``audit``) is drawn first from all unread
images: the unbiased sample from which a run estimates its own delivered-label error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.neighbors import NearestNeighbors

from brainscan_exp.core.calibrate import logit

STRATEGIES = ("safety", "threshold", "committee", "random", "typiclust", "kcenter")


@dataclass
class PoolView:
    """What a strategy may look at: the unread pool's scores and embedding, and the known images."""

    p: np.ndarray  # P(cancer), mean of the inner models
    threshold: float
    q: np.ndarray  # pool posterior P(cancer | score, pool)
    committee: np.ndarray  # (n_models, n_pool) inner models' P(cancer)
    X: np.ndarray  # pool embedding
    X_known: np.ndarray  # labelled + already read images' embedding

    @classmethod
    def of(cls, prediction, X: np.ndarray, X_known: np.ndarray) -> PoolView:
        """The view of a fitted predict pipeline (:class:`~brainscan_exp.core.predict.PoolPrediction`)
        on its pool ``X`` (any ``(n, d)`` array-like: the committee comes from the pool's scoring pass)."""
        committee = prediction.pool_committee
        if committee is None or committee.shape[1] != len(X):
            committee = prediction.committee(X)
        return cls(prediction.p_pool, prediction.threshold, prediction.estimate.posterior, committee, X, X_known)


def _ranked(score: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` allowed indices with the highest score (stable order on ties)."""
    idx = np.flatnonzero(allowed)
    return idx[np.argsort(-score[idx], kind="stable")][:n]


def safety(view: PoolView, allowed: np.ndarray, n: int, rng) -> np.ndarray:
    normal = allowed & (view.p < view.threshold)
    first = _ranked(view.q, normal, n)
    if len(first) == n:
        return first
    rest = allowed.copy()
    rest[first] = False
    return np.concatenate([first, threshold(view, rest, n - len(first), rng)])


def threshold(view: PoolView, allowed: np.ndarray, n: int, rng) -> np.ndarray:
    return _ranked(-np.abs(logit(view.p) - logit(view.threshold)), allowed, n)


def committee(view: PoolView, allowed: np.ndarray, n: int, rng) -> np.ndarray:
    votes = (view.committee >= view.threshold).mean(axis=0)
    disagreement = 1 - np.abs(2 * votes - 1)
    spread = logit(view.committee).std(axis=0)
    return _ranked(disagreement + 1e-3 * spread / (1 + spread), allowed, n)


def random(view: PoolView, allowed: np.ndarray, n: int, rng) -> np.ndarray:
    idx = np.flatnonzero(allowed)
    return np.sort(rng.choice(idx, min(n, len(idx)), replace=False))


GEOMETRY_MAX = 50_000
"""``typiclust`` and ``kcenter`` look at a seeded sample of at most this many unread images: their
work grows with the pool times the batch, and a pool of millions would be read into memory. The
farthest or most typical image of a 50,000 sample stands in for the pool's."""


def _candidates(allowed: np.ndarray, rng) -> np.ndarray:
    idx = np.flatnonzero(allowed)
    if len(idx) <= GEOMETRY_MAX:
        return idx
    return np.sort(rng.choice(idx, GEOMETRY_MAX, replace=False))


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def typiclust(view: PoolView, allowed: np.ndarray, n: int, rng, k_neighbours: int = 20) -> np.ndarray:
    """TypiClust: cluster known + unread into |known| + n clusters; from the clusters holding the
    fewest known images (largest first), take the image of highest typicality (inverse mean
    distance to its nearest neighbours inside its cluster)."""
    idx = _candidates(allowed, rng)
    if n <= 0 or not len(idx):
        return np.zeros(0, int)
    X = _unit(np.concatenate([view.X_known, view.X[idx]]))
    k = min(len(view.X_known) + n, len(X))
    seed = int(rng.integers(2**31 - 1))
    km = MiniBatchKMeans(k, random_state=seed, n_init=3) if len(X) > 20_000 else KMeans(k, random_state=seed, n_init=1)
    cluster = km.fit_predict(X)
    known_cluster, pool_cluster = cluster[: len(view.X_known)], cluster[len(view.X_known) :]
    n_known = np.bincount(known_cluster, minlength=k)
    size = np.bincount(pool_cluster, minlength=k)
    chosen: list[int] = []
    for c in sorted(np.flatnonzero(size), key=lambda c: (n_known[c], -size[c])):
        if len(chosen) == n:
            break
        members = np.flatnonzero(pool_cluster == c)
        if len(members) == 1:
            chosen.append(idx[members[0]])
            continue
        nn = NearestNeighbors(n_neighbors=min(k_neighbours, len(members) - 1)).fit(X[len(view.X_known) + members])
        dist = nn.kneighbors()[0]  # without the image itself
        chosen.append(idx[members[np.argmax(1 / (dist.mean(axis=1) + 1e-12))]])
    if len(chosen) < n:  # fewer non-empty clusters than reads: fill with the farthest images
        rest = allowed.copy()
        rest[chosen] = False
        chosen += list(kcenter(view, rest, n - len(chosen), rng))
    return np.asarray(chosen, int)


def _nearest_distance(X: np.ndarray, K: np.ndarray, block: int = 4096) -> np.ndarray:
    """Euclidean distance from each unit row of ``X`` to its nearest unit row of ``K``, ``block``
    rows at a time (a whole ``X @ K.T`` is 1 GB for 50,000 unread against 5,000 known)."""
    out = np.empty(len(X), dtype=np.float64)
    for s in range(0, len(X), block):
        sims = X[s : s + block] @ K.T
        out[s : s + block] = np.sqrt(np.maximum(2.0 - 2.0 * sims.max(axis=1), 0.0))
    return out


def kcenter(view: PoolView, allowed: np.ndarray, n: int, rng) -> np.ndarray:
    idx = _candidates(allowed, rng)
    if n <= 0 or not len(idx):
        return np.zeros(0, int)
    X = _unit(view.X[idx])
    nearest = _nearest_distance(X, _unit(view.X_known)) if len(view.X_known) else np.full(len(idx), np.inf)
    chosen = []
    for _ in range(min(n, len(idx))):
        i = int(np.argmax(nearest))
        chosen.append(idx[i])
        nearest = np.minimum(nearest, np.linalg.norm(X - X[i], axis=1))
        nearest[i] = -1.0
    return np.asarray(chosen, int)


_RULES = {f.__name__: f for f in (safety, threshold, committee, random, typiclust, kcenter)}


def parse_strategy(strategy: str) -> list[str]:
    """The rules of one round: ``a+b`` -> [a, b]."""
    parts = [s.strip() for s in str(strategy).split("+")]
    unknown = [s for s in parts if s not in _RULES]
    if unknown:
        raise ValueError(f"review strategy {strategy!r}: unknown {unknown}; choose from {STRATEGIES} or 'a+b'")
    return parts


def choose_reads(
    strategy: str,
    view: PoolView,
    n: int,
    audit_share: float = 0.0,
    seed: int = 0,
    exclude: np.ndarray | None = None,
    final_strategy: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` distinct unread indices and each one's reason (``audit`` or the rule that chose
    it). ``exclude``: indices that may not be chosen; ``final_strategy``: the rules of this batch
    instead of ``strategy`` (the caller passes it for the batch that spends the budget). A final
    batch draws no audit: nothing after it is refitted, so its reads check the model that chose
    them (safety reads do not train, :mod:`brainscan_exp.core.reads`), and an audit read would
    train it and move its threshold."""
    parts = parse_strategy(final_strategy or strategy)
    rng = np.random.default_rng(seed)
    allowed = np.ones(len(view.p), bool)
    if exclude is not None:
        allowed[np.asarray(exclude, int)] = False
    n = min(int(n), int(allowed.sum()))
    chosen, reasons = [], []

    def take(idx, reason):
        allowed[idx] = False
        chosen.extend(int(i) for i in idx)
        reasons.extend([reason] * len(idx))

    n_audit = 0 if final_strategy else int(round(audit_share * n))
    take(random(view, allowed, n_audit, rng), "audit")
    left = n - n_audit
    for k, part in enumerate(parts):
        idx = _RULES[part](view, allowed, left // (len(parts) - k), rng)
        take(idx, part)
        left -= len(idx)
    return np.asarray(chosen, int), np.asarray(reasons, dtype=object)
