"""Candidate pairs without comparing every pair: band buckets on hashes, k-NN on embeddings.

Why: confirming a pair costs milliseconds, and there are n(n-1)/2 pairs (8e12 for 4 million
images). Candidates must come from a sub-quadratic index:

- **band buckets** (multi-index hashing): a 64-bit hash is cut into ``n_bands`` bands; two hashes
  within Hamming distance ``d`` agree exactly on at least one band whenever ``n_bands > d``
  (pigeonhole). Image i's canonical hash is bucketed against the 8 transformed hashes of every
  image, so flipped and rotated copies collide too. Work is proportional to the number of
  collisions, ~ N^2 * 8 * n_bands / 2^(64 / n_bands) for uniform bits: at N = 1,500 short bands
  (6 bits) are cheap; at N = 4 million use bands of ~24 bits (2-3 bands, i.e. an exact radius of
  1-2 bits per hash) and lean on the embedding route for the rest. ``max_bucket`` skips
  degenerate buckets (blank images) that would make the work quadratic.
- **embedding neighbours**: the ``k`` nearest images by cosine distance in a feature space
  (crops and re-contrasts that move a hash too far often stay close there).

A hash *family* (e.g. pHash + dHash of the full frame) is scored by the sum of its members'
Hamming distances under the same transform, minimised over the 8 transforms and both directions.
If that sum is <= D, one of the m members is within D // m, so ``n_bands > D // m`` on every member
guarantees the pair is found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "band_collisions",
    "band_values",
    "embedding_candidates",
    "family_distance",
    "hamming",
    "hash_candidates",
    "merge_candidates",
    "required_bands",
]

_POPCOUNT8 = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise Hamming distance between uint64 arrays (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int16)
    return _POPCOUNT8[np.ascontiguousarray(x)[..., None].view(np.uint8)].sum(-1, dtype=np.int16)


def required_bands(max_distance: int, n_members: int = 1) -> int:
    """Bands per hash that guarantee a collision for a family distance <= ``max_distance``."""
    return int(max_distance) // max(1, int(n_members)) + 1


def _band_bounds(n_bands: int, n_bits: int = 64) -> list[tuple[int, int]]:
    if not 1 <= n_bands <= n_bits:
        raise ValueError(f"n_bands must be in [1, {n_bits}], got {n_bands}")
    edges = np.linspace(0, n_bits, n_bands + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def band_values(codes: np.ndarray, n_bands: int) -> np.ndarray:
    """Band ``b`` of each 64-bit code as an integer: shape ``codes.shape + (n_bands,)``."""
    codes = np.asarray(codes, dtype=np.uint64)
    out = np.empty(codes.shape + (n_bands,), dtype=np.uint64)
    for b, (lo, hi) in enumerate(_band_bounds(n_bands)):
        mask = np.uint64((1 << (hi - lo)) - 1)
        out[..., b] = (codes >> np.uint64(lo)) & mask
    return out


def band_collisions(hashes: np.ndarray, n_bands: int, max_bucket: int | None = 100_000) -> np.ndarray:
    """Unique pairs ``(i, j)``, ``i < j``, whose hashes agree exactly on at least one band, in
    some transform: image i's canonical hash (column 0) against image j's hashes (all columns).

    ``hashes`` is ``(n, T)`` uint64 (T = 1 for no transforms). A bucket holding more than
    ``max_bucket`` (canonical x transformed) pairs is skipped (None: never). Returns an ``(m, 2)``
    int64 array sorted by ``(i, j)``.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    if hashes.ndim == 1:
        hashes = hashes[:, None]
    n, n_t = hashes.shape
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    bands = band_values(hashes, n_bands)  # (n, T, B)
    keys: list[np.ndarray] = []
    owner_t = np.repeat(np.arange(n, dtype=np.int64), n_t)
    for b in range(n_bands):
        canon = bands[:, 0, b]
        trans = bands[:, :, b].ravel()
        order = np.argsort(trans, kind="stable")
        trans_sorted, trans_owner = trans[order], owner_t[order]
        left = np.searchsorted(trans_sorted, canon, side="left")
        right = np.searchsorted(trans_sorted, canon, side="right")
        counts = right - left
        if max_bucket is not None:
            _, inverse, canon_counts = np.unique(canon, return_inverse=True, return_counts=True)
            counts = np.where(canon_counts[inverse] * counts > max_bucket, 0, counts)
        total = int(counts.sum())
        if total == 0:
            continue
        i = np.repeat(np.arange(n, dtype=np.int64), counts)
        starts = np.repeat(left - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        j = trans_owner[np.arange(total, dtype=np.int64) + starts]
        keep = i != j
        lo, hi = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
        keys.append(np.unique(lo * n + hi))
    if not keys:
        return np.empty((0, 2), dtype=np.int64)
    flat = np.unique(np.concatenate(keys))
    return np.stack([flat // n, flat % n], axis=1)


def family_distance(members: Sequence[np.ndarray], pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best summed Hamming distance of a hash family for each pair, and the transform achieving it.

    ``members``: ``(n, 8)`` uint64 arrays (same transforms). For a pair (i, j) the distance is
    ``min over t of sum over members of H(member[i, 0], member[j, t])``, and the same with i and
    j swapped (the transforms are only approximately symmetric after resampling). The transform
    returned maps j onto i (or i onto j when the swapped direction won).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return np.empty(0, dtype=np.int16), np.empty(0, dtype=np.int8)
    i, j = pairs[:, 0], pairs[:, 1]
    forward = sum(hamming(m[i, :1], m[j]) for m in members)  # (P, 8)
    backward = sum(hamming(m[j, :1], m[i]) for m in members)
    both = np.minimum(forward, backward)
    best_t = both.argmin(axis=1)
    return both[np.arange(len(pairs)), best_t].astype(np.int16), best_t.astype(np.int8)


def hash_candidates(
    hashes: Mapping[str, np.ndarray],
    families: Sequence[str] | None = None,
    max_distance: int = 22,
    n_bands: int | None = None,
    max_bucket: int | None = 100_000,
) -> pd.DataFrame:
    """Pairs within ``max_distance`` in at least one hash family, found through band buckets.

    ``hashes``: ``{"<family>_<method>": (n, 8) uint64}`` (:func:`~.hashing.compute_hashes`).
    ``families``: which prefixes to use (default: all present). ``n_bands``: bands per 64-bit hash
    (default: :func:`required_bands`, the smallest exact one). Returns a DataFrame ``i, j,
    hamming, transform, family`` (the best family), sorted by ``(i, j)``.
    """
    by_family: dict[str, list[np.ndarray]] = {}
    for key, arr in hashes.items():
        family = key.split("_", 1)[0]
        if families is None or family in families:
            by_family.setdefault(family, []).append(np.asarray(arr, dtype=np.uint64))
    if not by_family:
        raise ValueError(f"no hashes for families {families}; have {sorted(hashes)}")
    columns = ["i", "j", "hamming", "transform", "family"]
    frames = []
    for family, members in by_family.items():
        bands = n_bands if n_bands is not None else required_bands(max_distance, len(members))
        n = len(members[0])
        keys = np.unique(
            np.concatenate([c[:, 0] * n + c[:, 1] for c in (band_collisions(m, bands, max_bucket) for m in members)])
        )
        pairs = np.stack([keys // n, keys % n], axis=1) if n else np.empty((0, 2), np.int64)
        dist, transform = family_distance(members, pairs)
        keep = dist <= max_distance
        frames.append(
            pd.DataFrame(
                {
                    "i": pairs[keep, 0],
                    "j": pairs[keep, 1],
                    "hamming": dist[keep],
                    "transform": transform[keep],
                    "family": family,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    out = out.sort_values(["i", "j", "hamming"]).drop_duplicates(["i", "j"], keep="first")
    return out.reset_index(drop=True)[columns]


def embedding_candidates(embeddings: np.ndarray, n_neighbors: int = 5, max_cosine: float = 0.1) -> pd.DataFrame:
    """Each image's ``n_neighbors`` nearest images by cosine distance, kept if <= ``max_cosine``.

    Returns ``i, j, cosine`` (``i < j``, unique, sorted). Brute force is exact and fine up to ~1e5
    images; beyond, pass the embeddings through an approximate index first.
    """
    X = np.asarray(embeddings, dtype=np.float32)
    n = len(X)
    if n < 2 or n_neighbors < 1:
        return pd.DataFrame({"i": np.empty(0, np.int64), "j": np.empty(0, np.int64), "cosine": np.empty(0)})
    nn = NearestNeighbors(n_neighbors=min(n_neighbors + 1, n), metric="cosine", algorithm="brute").fit(X)
    dist, idx = nn.kneighbors(X)
    i = np.repeat(np.arange(n), idx.shape[1])
    j, d = idx.ravel(), dist.ravel()
    keep = (i != j) & (d <= max_cosine)
    lo, hi = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    out = pd.DataFrame({"i": lo.astype(np.int64), "j": hi.astype(np.int64), "cosine": d[keep].astype(float)})
    return out.sort_values(["i", "j", "cosine"]).drop_duplicates(["i", "j"]).reset_index(drop=True)


def _cosine_of(embeddings: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    X = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1)
    norms[norms == 0] = 1.0
    return 1.0 - np.einsum("ij,ij->i", X[i], X[j]) / (norms[i] * norms[j])


def merge_candidates(
    hash_pairs: pd.DataFrame,
    knn_pairs: pd.DataFrame | None = None,
    hashes: Mapping[str, np.ndarray] | None = None,
    embeddings: np.ndarray | None = None,
) -> pd.DataFrame:
    """Union of both routes, one row per unordered pair, with both cheap signals filled in.

    Columns ``i, j, hamming, transform, cosine, source`` (``hash``, ``knn`` or ``hash+knn``). A kNN
    pair gets its best family Hamming distance when ``hashes`` is given; a hash pair gets its
    cosine distance when ``embeddings`` is given (NaN otherwise).
    """
    frames = [hash_pairs.assign(source="hash")[["i", "j", "source"]]]
    if knn_pairs is not None and len(knn_pairs):
        frames.append(knn_pairs.assign(source="knn")[["i", "j", "source"]])
    allp = pd.concat(frames, ignore_index=True)
    out = allp.groupby(["i", "j"], sort=True).source.agg(lambda s: "+".join(sorted(set(s)))).reset_index()
    pairs = out[["i", "j"]].to_numpy(np.int64)
    out["hamming"] = np.nan
    out["transform"] = -1
    if hashes is not None and len(pairs):
        by_family: dict[str, list[np.ndarray]] = {}
        for key, arr in hashes.items():
            by_family.setdefault(key.split("_", 1)[0], []).append(np.asarray(arr, dtype=np.uint64))
        best = np.full(len(pairs), np.iinfo(np.int16).max, dtype=np.int16)
        best_t = np.full(len(pairs), -1, dtype=np.int8)
        for members in by_family.values():
            dist, t = family_distance(members, pairs)
            better = dist < best
            best, best_t = np.where(better, dist, best), np.where(better, t, best_t)
        out["hamming"], out["transform"] = best.astype(float), best_t.astype(int)
    elif len(hash_pairs):
        known = hash_pairs.set_index(["i", "j"])
        idx = pd.MultiIndex.from_frame(out[["i", "j"]])
        out["hamming"] = known.hamming.reindex(idx).to_numpy(float)
        out["transform"] = known.transform.reindex(idx).fillna(-1).to_numpy(int)
    out["cosine"] = np.nan
    if embeddings is not None and len(pairs):
        out["cosine"] = _cosine_of(embeddings, pairs[:, 0], pairs[:, 1])
    return out[["i", "j", "hamming", "transform", "cosine", "source"]]
