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

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from brainscan_exp.features.vectors import RowView, release_pages

__all__ = [
    "ann_index",
    "ann_search",
    "band_collisions",
    "cap_per_image",
    "band_values",
    "embedding_candidates",
    "family_distance",
    "hamming",
    "hash_candidates",
    "ivf_lists",
    "merge_candidates",
    "neighbour_pairs",
    "required_bands",
]

_CHUNK = 1 << 20  # pairs (or query rows) per block of vectorised work

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


def _bucket_pairs(
    canon: np.ndarray,
    c_owner: np.ndarray,
    trans: np.ndarray,
    t_owner: np.ndarray,
    masks: Sequence[np.uint64],
    max_bucket: int | None,
    chain: int,
) -> list[np.ndarray]:
    """``(i, j)`` blocks of canonical entries against transformed entries sharing ``hash & masks[0]``;
    a bucket over ``max_bucket`` (canonical x transformed) entries is split by the next, wider mask;
    at the last mask (the whole hash: identical codes, e.g. blank frames) each canonical entry is
    paired with the ``chain`` transformed entries that follow it in image order (a chain keeps the
    bucket connected, in linear work)."""
    mask = masks[0]
    ck, tk = canon & mask, trans & mask
    order = np.argsort(tk, kind="stable")  # stable: a bucket lists its images in index order
    tk_sorted, t_sorted = tk[order], t_owner[order]
    left = np.searchsorted(tk_sorted, ck, side="left")
    right = np.searchsorted(tk_sorted, ck, side="right")
    counts = right - left
    big = np.zeros(len(ck), dtype=bool)
    if max_bucket is not None and len(ck):
        _, inverse, canon_counts = np.unique(ck, return_inverse=True, return_counts=True)
        big = canon_counts[inverse.reshape(-1)] * counts > max_bucket
    out: list[np.ndarray] = []
    small = np.where(big, 0, counts)
    total = int(small.sum())
    if total:
        i = np.repeat(c_owner, small)
        starts = np.repeat(left - np.concatenate([[0], np.cumsum(small)[:-1]]), small)
        out.append(np.stack([i, t_sorted[np.arange(total, dtype=np.int64) + starts]], axis=1))
    if big.any():
        big_keys = np.unique(ck[big])
        in_big = np.isin(tk, big_keys)
        if len(masks) > 1:
            out += _bucket_pairs(canon[big], c_owner[big], trans[in_big], t_owner[in_big], masks[1:], max_bucket, chain)
        else:
            for key in big_keys:
                members = np.unique(t_owner[tk == key])  # sorted image indices in this bucket
                queries = c_owner[ck == key]
                pos = np.searchsorted(members, queries)
                for step in range(1, chain + 1):
                    nxt = members[np.minimum(pos + step, len(members) - 1)]
                    out.append(np.stack([queries, nxt], axis=1))
    return out


def band_collisions(hashes: np.ndarray, n_bands: int, max_bucket: int | None = 100_000, chain: int = 4) -> np.ndarray:
    """Unique pairs ``(i, j)``, ``i < j``, whose hashes agree exactly on at least one band, in
    some transform: image i's canonical hash (column 0) against image j's hashes (all columns).

    ``hashes`` is ``(n, T)`` uint64 (T = 1 for no transforms). A bucket holding more than
    ``max_bucket`` (canonical x transformed) pairs is split: its entries are re-bucketed on two
    adjacent bands, then on the whole hash, and a bucket of identical hashes still that big is
    chained (each image with the ``chain`` next ones), so near-black or uniform frames cost linear
    work (None: never split). Returns an ``(m, 2)`` int64 array sorted by ``(i, j)``.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    if hashes.ndim == 1:
        hashes = hashes[:, None]
    n, n_t = hashes.shape
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    bounds = _band_bounds(n_bands)
    band_masks = [np.uint64(((1 << (hi - lo)) - 1) << lo) for lo, hi in bounds]
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    owner = np.arange(n, dtype=np.int64)
    owner_t = np.repeat(owner, n_t)
    trans = hashes.ravel()
    keys: list[np.ndarray] = []
    for b in range(n_bands):
        wider = band_masks[b] | band_masks[(b + 1) % n_bands]
        masks = [band_masks[b]] + ([wider] if n_bands > 2 else []) + ([full] if n_bands > 1 else [])
        for block in _bucket_pairs(hashes[:, 0], owner, trans, owner_t, masks, max_bucket, chain):
            i, j = block[:, 0], block[:, 1]
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
        for start in range(0, len(keys), _CHUNK):  # bounded temporaries: (chunk, 8) per member
            part = keys[start : start + _CHUNK]
            pairs = np.stack([part // n, part % n], axis=1)
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
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(columns, ["int64", "int64", "int16", "int8", "object"])}
        )
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["i", "j", "hamming"]).drop_duplicates(["i", "j"], keep="first")
    return out.reset_index(drop=True)[columns]


def _read(embeddings: np.ndarray, key) -> np.ndarray:
    """A float32 copy of ``embeddings[key]``, a memmap's pages unmapped after the read."""
    block = np.array(embeddings[key], dtype=np.float32)
    release_pages(embeddings)
    return block


def _unit(block: np.ndarray) -> np.ndarray:
    block = np.array(block, dtype=np.float32)  # a copy: memmaps stay read-only
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return block / norms


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 2 sqrt(n), at least 16
    (100 k: 512; 1 M: 2,048; 4 M: 4,096). Probing 8 lists then scans ~16 sqrt(n) vectors plus
    the list centroids per query, and training stays a minute or two at 1 M on 2 cores."""
    return int(2 ** max(4, round(math.log2(2 * math.sqrt(max(n, 1))))))


TRAIN_PER_LIST = 40  # k-means sample per inverted list (faiss warns below 39)
TRAIN_ITERATIONS = 10  # k-means iterations (faiss' default is 25; the lists only route queries)


def ann_index(
    embeddings: np.ndarray, index: str = "HNSW32", search_params: str = "", chunk_size: int = 65_536, seed: int = 0
):
    """A faiss index (``faiss.index_factory`` string, inner product) of the L2-normalised rows of
    ``embeddings`` (any ``(n, d)`` array, e.g. a memmap), added ``chunk_size`` rows at a time.
    ``{nlist}`` in the string becomes :func:`ivf_lists` (n). IVF quantisers train on a seeded
    sample of ``TRAIN_PER_LIST`` rows per list, ``TRAIN_ITERATIONS`` k-means iterations.
    ``search_params``: faiss' ``"nprobe=16"`` or ``"efSearch=64"`` style."""
    import faiss

    n, d = embeddings.shape
    nlist = ivf_lists(n)
    idx = faiss.index_factory(d, index.format(nlist=nlist), faiss.METRIC_INNER_PRODUCT)
    if not idx.is_trained:
        try:
            faiss.extract_index_ivf(idx).cp.niter = TRAIN_ITERATIONS
        except RuntimeError:  # not an IVF index (e.g. a PQ): its own defaults
            pass
        size = min(n, TRAIN_PER_LIST * nlist)
        sample = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
        idx.train(_unit(_read(embeddings, sample)))
    for start in range(0, n, chunk_size):
        idx.add(_unit(_read(embeddings, slice(start, start + chunk_size))))
    if search_params:
        faiss.ParameterSpace().set_index_parameters(idx, search_params)
    return idx


def ann_search(idx, embeddings: np.ndarray, n_neighbors: int, start: int = 0, stop: int | None = None):
    """``n_neighbors`` nearest rows (excluding no one: the query itself usually comes first) of rows
    ``start:stop`` of ``embeddings`` in ``idx``: ``(rows, neighbours (m, k) int64, exact cosine
    distances)``. The distances are recomputed from the vectors, since an index's own are
    approximate (SQ8 codes) or not cosines at all (a PCA prefix centres and projects)."""
    stop = len(embeddings) if stop is None else stop
    queries = _unit(_read(embeddings, slice(start, stop)))
    _, nbrs = idx.search(queries, n_neighbors + 1)
    nbrs = nbrs.astype(np.int64)
    dist = np.full(nbrs.shape, np.inf, dtype=np.float32)
    for col in range(nbrs.shape[1]):  # one neighbour per query at a time: bounded temporaries
        found = nbrs[:, col] >= 0
        block = RowView(embeddings, nbrs[found, col])[:]
        dist[found, col] = 1.0 - np.einsum("ij,ij->i", queries[found], _unit(block))
    return np.arange(start, stop, dtype=np.int64), nbrs, dist


def neighbour_pairs(rows: np.ndarray, nbrs: np.ndarray, dist: np.ndarray, max_cosine: float) -> pd.DataFrame:
    """Unique ``i < j`` pairs of a neighbour list within ``max_cosine`` (``-1`` neighbours dropped)."""
    i = np.repeat(rows, nbrs.shape[1])
    j, d = nbrs.ravel(), dist.ravel()
    keep = (j >= 0) & (i != j) & (d <= max_cosine)
    lo, hi = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    out = pd.DataFrame({"i": lo.astype(np.int64), "j": hi.astype(np.int64), "cosine": d[keep].astype(float)})
    return out.sort_values(["i", "j", "cosine"]).drop_duplicates(["i", "j"]).reset_index(drop=True)


def embedding_candidates(
    embeddings: np.ndarray,
    n_neighbors: int = 5,
    max_cosine: float = 0.1,
    index: str = "exact",
    search_params: str = "",
    chunk_size: int = 65_536,
) -> pd.DataFrame:
    """Each image's ``n_neighbors`` nearest images by cosine distance, kept if <= ``max_cosine``.

    ``index="exact"``: scikit-learn's brute force (exact, quadratic: fine up to ~1e5 images);
    otherwise a faiss factory string (``"IVF{nlist},Flat"``, ``"HNSW32"``, ...) searched in chunks of
    ``chunk_size`` query rows (:func:`ann_index`). Returns ``i, j, cosine`` (``i < j``, unique,
    sorted; ``cosine`` exact for ANN results too: :func:`ann_search`).
    """
    n = len(embeddings)
    if n < 2 or n_neighbors < 1:
        return pd.DataFrame({"i": np.empty(0, np.int64), "j": np.empty(0, np.int64), "cosine": np.empty(0)})
    if index == "exact":
        X = np.asarray(embeddings, dtype=np.float32)
        nn = NearestNeighbors(n_neighbors=min(n_neighbors + 1, n), metric="cosine", algorithm="brute").fit(X)
        dist, idx = nn.kneighbors(X)
        return neighbour_pairs(np.arange(n, dtype=np.int64), idx, dist, max_cosine)
    ann = ann_index(embeddings, index, search_params, chunk_size)
    k = min(n_neighbors, n - 1)
    frames = [
        neighbour_pairs(*ann_search(ann, embeddings, k, s, min(n, s + chunk_size)), max_cosine)
        for s in range(0, n, chunk_size)
    ]
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["i", "j", "cosine"]).drop_duplicates(["i", "j"]).reset_index(drop=True)


def cap_per_image(cands: pd.DataFrame, k: int | None, max_hamming: float, max_cosine: float) -> pd.DataFrame:
    """Keep a pair only when it is among the ``k`` best candidates of both its images, so that
    geometric confirmation is bounded per image (a hub, e.g. a blank frame, gets ``k`` at most).

    A pair's rank key is its best normalised cheap signal, ``min(hamming / max_hamming, cosine /
    max_cosine)`` (a missing signal counts as infinitely far); ties break on the other image's
    index. ``k`` None: everything is kept.
    """
    if k is None or len(cands) == 0:
        return cands
    h = cands.hamming.to_numpy(float) / max(float(max_hamming), 1e-9)
    c = cands.cosine.to_numpy(float) / max(float(max_cosine), 1e-9)
    key = np.fmin(np.nan_to_num(h, nan=np.inf), np.nan_to_num(c, nan=np.inf))
    pair = np.arange(len(cands), dtype=np.int64)
    i, j = cands.i.to_numpy(np.int64), cands.j.to_numpy(np.int64)
    image = np.concatenate([i, j])
    other = np.concatenate([j, i])
    order = np.lexsort((other, np.concatenate([key, key]), image))
    sorted_image = image[order]
    first = np.searchsorted(sorted_image, sorted_image, side="left")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - first
    worst = np.maximum(rank[: len(pair)], rank[len(pair) :])
    return cands[worst < k].reset_index(drop=True)


def _cosine_of(embeddings: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Exact cosine distance of rows ``i`` and ``j`` (reads only those rows, in blocks)."""
    out = np.empty(len(i), dtype=np.float64)
    rows_i, rows_j = RowView(embeddings, i), RowView(embeddings, j)  # sorted reads, pages released
    step = 32_768  # pairs per block: two (step, d) float64 blocks, ~270 MB at d = 520
    for s in range(0, len(i), step):
        a = rows_i[s : s + step].astype(np.float64)
        b = rows_j[s : s + step].astype(np.float64)
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        na[na == 0], nb[nb == 0] = 1.0, 1.0
        out[s : s + step] = 1.0 - np.einsum("ij,ij->i", a, b) / (na * nb)
    return out


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
    # one key per unordered pair, a bit per route (1: hash, 2: knn), OR-ed by sorting: linear in
    # the pairs (a groupby with a Python aggregate was quadratic-looking at 250 k images)
    routes = [(hash_pairs, 1)] + ([(knn_pairs, 2)] if knn_pairs is not None and len(knn_pairs) else [])
    n = 1 + max((int(max(f.i.max(), f.j.max())) for f, _ in routes if len(f)), default=0)
    keys = np.concatenate([f.i.to_numpy(np.int64) * n + f.j.to_numpy(np.int64) for f, _ in routes])
    bits = np.concatenate([np.full(len(f), b, dtype=np.int8) for f, b in routes])
    unique, inverse = np.unique(keys, return_inverse=True)
    source_bits = np.zeros(len(unique), dtype=np.int8)
    np.bitwise_or.at(source_bits, inverse.reshape(-1), bits)
    names = np.array(["", "hash", "knn", "hash+knn"], dtype=object)
    out = pd.DataFrame({"i": unique // n, "j": unique % n, "source": names[source_bits]})
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
            for lo in range(0, len(pairs), _CHUNK):  # bounded temporaries: (chunk, 8) per member
                block = slice(lo, lo + _CHUNK)
                dist, t = family_distance(members, pairs[block])
                better = dist < best[block]
                best[block], best_t[block] = np.where(better, dist, best[block]), np.where(better, t, best_t[block])
        out["hamming"], out["transform"] = best.astype(float), best_t.astype(int)
    elif len(hash_pairs):
        known = hash_pairs.set_index(["i", "j"])
        idx = pd.MultiIndex.from_frame(out[["i", "j"]])
        out["hamming"] = known["hamming"].reindex(idx).to_numpy(float)
        out["transform"] = known["transform"].reindex(idx).fillna(-1).to_numpy(int)
    out["cosine"] = np.nan
    if embeddings is not None and len(pairs):
        out["cosine"] = _cosine_of(embeddings, pairs[:, 0], pairs[:, 1])
    return out[["i", "j", "hamming", "transform", "cosine", "source"]]
