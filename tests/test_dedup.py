"""Near-copy detection on generated brain-like slices: planted copies are grouped with their
original, different slices (and adjacent slices of the same "patient") are not, and candidate
generation is sub-quadratic yet exact within its radius."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone

from brainscan_exp.dedup import (
    NO_GROUP,
    NearCopyFinder,
    band_collisions,
    compute_hashes,
    connected_groups,
    dihedral,
    duplicates_table,
    family_distance,
    hamming,
    hash_candidates,
    plot_uncertain_pairs,
)

SIZE = 256
N_ORIGINALS = 5


def _smooth_noise(rng: np.random.Generator, sigma: float) -> np.ndarray:
    field = cv2.GaussianBlur(rng.standard_normal((SIZE, SIZE)).astype(np.float32), (0, 0), sigma)
    return field / (field.std() + 1e-6)


def brain_slice(seed: int, deform_from: int | None = None) -> np.ndarray:
    """A head (ellipse + skull) with gyri-like texture, ventricles and blobs, different per seed, all
    with about the same intensity statistics. With ``deform_from``, the slice of that seed smoothly
    deformed with a few structures changed: an "adjacent slice" of the same patient."""
    base = seed if deform_from is None else deform_from
    rng = np.random.default_rng(base)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE - 0.5
    a, b = rng.uniform(0.33, 0.38), rng.uniform(0.40, 0.44)
    cx, cy = rng.normal(0, 0.01, 2)
    texture = 0.6 * _smooth_noise(rng, 2.0) + 0.4 * _smooth_noise(rng, 5.0)
    blobs = [
        (rng.uniform(-0.2, 0.2), rng.uniform(-0.25, 0.25), rng.uniform(0.02, 0.05), rng.uniform(-0.3, 0.3))
        for _ in range(8)
    ]
    if deform_from is not None:  # adjacent slice: non-rigid shift of the anatomy, some blobs change
        drng = np.random.default_rng(seed)
        dx = 3.0 * _smooth_noise(drng, 25.0)
        dy = 3.0 * _smooth_noise(drng, 25.0)
        mx, my = np.meshgrid(np.arange(SIZE, dtype=np.float32), np.arange(SIZE, dtype=np.float32))
        texture = cv2.remap(texture, mx + dx, my + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        texture = 0.8 * texture + 0.2 * _smooth_noise(drng, 2.0)
        blobs = blobs[:5] + [
            (drng.uniform(-0.2, 0.2), drng.uniform(-0.25, 0.25), drng.uniform(0.02, 0.05), drng.uniform(-0.3, 0.3))
            for _ in range(3)
        ]
    r = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2
    img = np.zeros((SIZE, SIZE), np.float32)
    brain = r <= 0.85
    img[(r <= 1.0) & ~brain] = 0.85
    img[brain] = 0.45 + 0.12 * texture[brain]
    for bx, by, rad, val in blobs:
        d = ((xx - cx - bx) ** 2 + (yy - cy - by) ** 2) / rad**2
        img += (d <= 1) * brain * val
    for side in (-1, 1):  # ventricles
        img[(((xx - cx - side * 0.05) / 0.03) ** 2 + ((yy - cy) / 0.1) ** 2 <= 1)] = 0.1
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    M = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), degrees, 1.0)
    return cv2.warpAffine(img, M, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0)


def _crop(img: np.ndarray, keep: float) -> np.ndarray:
    m = int(round(SIZE * (1 - keep) / 2))
    return cv2.resize(img[m : SIZE - m, m : SIZE - m], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


def _gamma(img: np.ndarray, g: float) -> np.ndarray:
    return (255 * (img / 255.0) ** g).round().astype(np.uint8)


COPIES = {
    "hflip": lambda im: im[:, ::-1],
    "vflip": lambda im: im[::-1, :],
    "rot90": lambda im: np.rot90(im),
    "crop85": lambda im: _crop(im, 0.85),
    "resize200": lambda im: cv2.resize(im, (200, 200), interpolation=cv2.INTER_AREA),
    "rot4": lambda im: _rotate(im, 4.0),
    "gamma07": lambda im: _gamma(im, 0.7),
    "gamma14": lambda im: _gamma(im, 1.4),
}


def _save(arr: np.ndarray, path) -> str:
    Image.fromarray(np.ascontiguousarray(arr)).convert("RGB").save(path, quality=95)
    return str(path)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Originals (seeds 0..4), their 8 planted copies each, and an adjacent slice of originals 0
    and 1; returns (paths, origin) where origin[k] is the seed image k derives from (-1-seed for
    adjacent slices, which must stay apart from their seed's group)."""
    folder = tmp_path_factory.mktemp("dedup_images")
    paths, origin, kinds = [], [], []
    for seed in range(N_ORIGINALS):
        img = brain_slice(seed)
        paths.append(_save(img, folder / f"s{seed}_orig.jpg"))
        origin.append(seed)
        kinds.append("orig")
        for name, fn in COPIES.items():
            paths.append(_save(fn(img), folder / f"s{seed}_{name}.jpg"))
            origin.append(seed)
            kinds.append(name)
    for seed in (0, 1):
        paths.append(_save(brain_slice(100 + seed, deform_from=seed), folder / f"s{seed}_adjacent.jpg"))
        origin.append(-1 - seed)
        kinds.append("adjacent")
    return paths, np.array(origin), kinds


@pytest.fixture(scope="module")
def fitted(planted):
    paths, _, _ = planted
    return NearCopyFinder(n_jobs=1).fit(paths)


# --------------------------------------------------------------------------------------------
# the whole finder


@pytest.mark.parametrize("kind", sorted(COPIES))
def test_each_planted_copy_is_grouped_with_its_original(planted, fitted, kind):
    paths, origin, kinds = planted
    groups = fitted.groups_
    for seed in range(N_ORIGINALS):
        orig = seed * (len(COPIES) + 1)
        copy = orig + 1 + list(COPIES).index(kind)
        assert kinds[copy] == kind and origin[copy] == seed
        assert groups[orig] != NO_GROUP, f"original of seed {seed} in no group"
        assert groups[copy] == groups[orig], f"{kind} copy of seed {seed} not grouped with its original"


def test_no_group_mixes_different_slices(planted, fitted):
    _, origin, kinds = planted
    groups = fitted.groups_
    for g in set(groups[groups != NO_GROUP].tolist()):
        members = np.flatnonzero(groups == g)
        assert len(set(origin[members].tolist())) == 1, f"group {g} mixes {sorted(set(origin[members]))}"
    # exactly one group per original, holding the original and its 8 copies
    assert fitted.n_groups_ == N_ORIGINALS
    adjacent = [k for k, kind in enumerate(kinds) if kind == "adjacent"]
    assert all(groups[k] == NO_GROUP for k in adjacent), "an adjacent slice joined a group"


def test_adjacent_slices_are_candidates_but_rejected(planted, fitted):
    """The precision guard must be the confirmation, not luck in candidate generation: the adjacent
    slices look alike enough to be candidates (or at least ORB-consistent) and are still rejected."""
    _, origin, kinds = planted
    pairs = fitted.pairs_
    adjacent = {k for k, kind in enumerate(kinds) if kind == "adjacent"}
    rows = pairs[pairs.i.isin(adjacent) | pairs.j.isin(adjacent)]
    own = rows[[origin[i] == -1 - origin[j] or origin[j] == -1 - origin[i] for i, j in zip(rows.i, rows.j)]]
    assert len(own) > 0, "adjacent slices never became candidates: the test lost its teeth"
    assert (own.coarse_inliers >= fitted.min_coarse_inliers).any(), "no adjacent pair reached the fine stage"
    assert not own.confirmed.any()
    assert (own.score < fitted.min_score).all()


def test_lax_thresholds_would_merge_adjacent_slices(planted):
    """The strict precise-inlier rule is what keeps adjacent slices apart: without it they merge."""
    paths, _, kinds = planted
    subset = [paths[0], paths[kinds.index("adjacent")]]
    lax = NearCopyFinder(min_inliers=2, min_score=0.0, min_coverage=0.0, n_jobs=1).fit(subset)
    strict = NearCopyFinder(n_jobs=1).fit(subset)
    assert lax.groups_[0] == lax.groups_[1] != NO_GROUP
    assert (strict.groups_ == NO_GROUP).all()


def test_pairs_and_groups_attributes(planted, fitted):
    paths, _, _ = planted
    p = fitted.pairs_
    for col in ["i", "j", "hamming", "cosine", "inliers", "score", "confirmed", "kind"]:
        assert col in p.columns
    assert (p.i < p.j).all() and not p.duplicated(["i", "j"]).any()
    assert (p.kind == "near").all()
    assert p.cosine.isna().all()  # no embeddings given
    conf = p[p.confirmed]
    assert (conf.inliers >= fitted.min_inliers).all() and (conf.score >= fitted.min_score).all()
    assert fitted.groups_.shape == (len(paths),)
    assert set(fitted.timings_) >= {"hashing", "candidates", "confirmation", "total"}


def test_duplicates_table(planted, fitted):
    paths, _, _ = planted
    table = duplicates_table(paths, fitted)
    assert list(table.columns) == ["file", "group", "kind", "score"]
    assert len(table) == int((fitted.groups_ != NO_GROUP).sum()) == N_ORIGINALS * (len(COPIES) + 1)
    assert (table.kind == "near").all()
    assert table.score.between(fitted.min_score, 1.0).all()
    with pytest.raises(ValueError):
        duplicates_table(paths[:-1], fitted)


def test_estimator_conventions():
    finder = NearCopyFinder(max_hamming=10, min_inliers=30)
    params = finder.get_params()
    assert params["max_hamming"] == 10 and params["min_inliers"] == 30
    twin = clone(finder).set_params(n_neighbors=3)
    assert twin.get_params()["n_neighbors"] == 3 and twin.get_params()["max_hamming"] == 10
    assert not hasattr(twin, "groups_")


def test_embeddings_add_candidates_the_hashes_miss(planted):
    """Hash route off (max_hamming=-1): only the embedding neighbours can propose pairs."""
    paths, origin, _ = planted
    emb = np.eye(N_ORIGINALS + 2)[np.where(origin >= 0, origin, N_ORIGINALS - 1 - origin)]
    emb = emb + 0.01 * np.random.default_rng(0).standard_normal(emb.shape)
    finder = NearCopyFinder(max_hamming=-1, n_neighbors=8, max_cosine=0.05, n_jobs=1).fit(paths[:9], emb[:9])
    assert len(finder.pairs_) > 0 and (finder.pairs_.cosine <= 0.05).all()
    assert finder.pairs_.confirmed.any()
    assert finder.n_groups_ == 1


def test_uncertain_pairs_mosaic(planted, fitted, tmp_path):
    paths, _, _ = planted
    out = plot_uncertain_pairs(paths, fitted.pairs_, tmp_path / "mosaic.png", n=4)
    assert out.exists() and out.stat().st_size > 10_000
    empty = plot_uncertain_pairs(paths, fitted.pairs_.iloc[:0], tmp_path / "empty.png")
    assert empty.exists()


# --------------------------------------------------------------------------------------------
# hashing


def test_dihedral_hashes_match_flipped_images(planted):
    paths, _, kinds = planted
    h = compute_hashes([paths[0], paths[kinds.index("hflip")], paths[kinds.index("rot90")]])
    ph = h["full_phash"]
    assert ph.shape == (3, 8) and ph.dtype == np.uint64
    # the canonical hash of the flipped copy is (close to) the original's mirror hash, not its own
    assert hamming(ph[1, 0], ph[0]).min() <= 4 and hamming(ph[1, 0], ph[0, 0]) > 10
    assert hamming(ph[2, 0], ph[0]).min() <= 4
    # transform 4 is the mirror; rotating four times is the identity
    img = np.arange(12).reshape(3, 4)
    assert np.array_equal(dihedral(img, 4), img[:, ::-1])
    assert np.array_equal(dihedral(dihedral(dihedral(dihedral(img, 1), 1), 1), 1), img)


# --------------------------------------------------------------------------------------------
# candidates


def _flip_bits(code: np.uint64, bits) -> np.uint64:
    out = int(code)
    for b in bits:
        out ^= 1 << int(b)
    return np.uint64(out)


def test_band_buckets_are_sub_quadratic_and_exact_within_radius():
    rng = np.random.default_rng(0)
    n, n_bands = 200, 4  # 16-bit bands: exact for distance <= 3
    hashes = rng.integers(0, 2**63, size=(n, 8), dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, (n, 8), dtype=np.uint64
    )
    planted = {(3, 57): 3, (10, 150): 2, (42, 43): 0, (99, 180): 1}
    for (i, j), d in planted.items():  # j's transform t is i's canonical hash with d bits flipped
        t = int(rng.integers(0, 8))
        hashes[j, t] = _flip_bits(hashes[i, 0], rng.choice(64, d, replace=False))
    pairs = band_collisions(hashes, n_bands)
    found = set(map(tuple, pairs.tolist()))
    assert len(pairs) < n * (n - 1) // 2 / 20, f"{len(pairs)} candidate pairs: not sub-quadratic"
    assert set(planted) <= found
    assert (pairs[:, 0] < pairs[:, 1]).all()
    # a pair at distance 4 with 4 bands can be missed, but never one at distance <= 3
    for _trial in range(50):
        i, j = rng.choice(n, 2, replace=False)
        h = hashes.copy()
        h[j, 5] = _flip_bits(h[i, 0], rng.choice(64, 3, replace=False))
        assert (min(i, j), max(i, j)) in set(map(tuple, band_collisions(h, n_bands).tolist()))


def test_hash_candidates_filter_by_family_distance():
    rng = np.random.default_rng(1)
    n = 200
    members = {f"full_{m}": rng.integers(0, 2**63, size=(n, 8), dtype=np.uint64) for m in ("phash", "dhash")}
    # pair (5, 6): 3 + 4 bits under transform 2; pair (7, 8): 9 + 9 bits (too far at max 12)
    for i, j, t, dp, dd in [(5, 6, 2, 3, 4), (7, 8, 6, 9, 9)]:
        members["full_phash"][j, t] = _flip_bits(members["full_phash"][i, 0], rng.choice(64, dp, replace=False))
        members["full_dhash"][j, t] = _flip_bits(members["full_dhash"][i, 0], rng.choice(64, dd, replace=False))
    cands = hash_candidates(members, max_distance=12)
    found = {
        (int(i), int(j)): (int(h), int(t))
        for i, j, h, t in cands[["i", "j", "hamming", "transform"]].itertuples(index=False)
    }
    assert found.get((5, 6)) == (7, 2)
    assert (7, 8) not in found
    assert (cands.hamming <= 12).all()
    dist, _ = family_distance(list(members.values()), np.array([[7, 8]]))
    assert dist[0] == 18


def test_connected_groups():
    labels = connected_groups(7, np.array([[0, 3], [3, 5], [1, 2]]))
    assert labels.tolist() == [0, 1, 1, 0, NO_GROUP, 0, NO_GROUP]
    assert (connected_groups(3, np.empty((0, 2))) == NO_GROUP).all()


def test_hamming_matches_python_popcount():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2**63, 50, dtype=np.uint64)
    b = rng.integers(0, 2**63, 50, dtype=np.uint64)
    assert hamming(a, b).tolist() == [bin(int(x) ^ int(y)).count("1") for x, y in zip(a, b)]


def test_all_pairs_reference_agrees_with_buckets_on_real_like_hashes(planted):
    """On the generated images, band buckets (default 6 bands) return every pair that brute force
    finds within the default distance."""
    paths, _, _ = planted
    hashes = compute_hashes(paths)
    n = len(paths)
    allpairs = np.array(list(itertools.combinations(range(n), 2)))
    best = np.minimum(
        *(family_distance([hashes[f"{fam}_phash"], hashes[f"{fam}_dhash"]], allpairs)[0] for fam in ("full", "head"))
    )
    brute = set(map(tuple, allpairs[best <= 22].tolist()))
    cands = hash_candidates(hashes, max_distance=22, n_bands=6)
    assert brute == set(zip(cands.i.tolist(), cands.j.tolist()))
    assert isinstance(cands, pd.DataFrame)


def test_blank_frames_cannot_make_a_bucket_quadratic():
    """2,000 identical hashes (blank frames) beside distinct ones: the oversize bucket is split,
    then chained, so pairs grow linearly; distinct planted pairs are still found."""
    rng = np.random.default_rng(3)
    n_blank, n = 2000, 2200
    hashes = rng.integers(0, 2**63, size=(n, 8), dtype=np.uint64)
    hashes[:n_blank] = 0
    hashes[n_blank + 1, 3] = _flip_bits(hashes[n_blank, 0], [5])
    pairs = band_collisions(hashes, 3, max_bucket=1000, chain=4)
    found = set(map(tuple, pairs.tolist()))
    assert len(pairs) <= 5 * n, f"{len(pairs)} pairs"
    assert (n_blank, n_blank + 1) in found
    blank_pairs = pairs[(pairs < n_blank).all(1)]
    assert (
        len(connected_groups(n_blank, blank_pairs)) == n_blank and (connected_groups(n_blank, blank_pairs) == 0).all()
    )
    # without a cap the same bucket is all pairs
    assert len(band_collisions(hashes[:300], 3, max_bucket=None)) == 300 * 299 // 2


def test_cap_per_image_bounds_confirmations():
    from brainscan_exp.dedup.candidates import cap_per_image

    hub = pd.DataFrame({"i": 0, "j": np.arange(1, 51), "hamming": np.arange(50.0), "cosine": np.nan})
    capped = cap_per_image(hub, 5, 22, 0.1)
    assert capped.j.tolist() == [1, 2, 3, 4, 5]
    assert cap_per_image(hub, None, 22, 0.1) is hub


def test_ann_neighbours_match_exact_on_clustered_vectors():
    from brainscan_exp.dedup import embedding_candidates

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(300, 32)).astype(np.float32)
    X = np.concatenate([centres, centres + 0.05 * rng.normal(size=centres.shape).astype(np.float32)])
    exact = embedding_candidates(X, 3, 0.1, index="exact")
    # a PCA prefix centres and projects: its inner products are not cosines, the kept pairs' are
    for index, params in [("HNSW32", "efSearch=64"), ("IVF16,Flat", "nprobe=4"), ("PCA16,IVF16,Flat", "nprobe=4")]:
        approx = embedding_candidates(X, 3, 0.1, index=index, search_params=params, chunk_size=128)
        merged = exact.merge(approx, on=["i", "j"], how="left", suffixes=("", "_ann"))
        assert merged.cosine_ann.notna().mean() >= 0.95, index
        np.testing.assert_allclose(merged.cosine_ann.dropna(), merged.cosine[merged.cosine_ann.notna()], atol=1e-5)
    assert {(k, k + 300) for k in range(300)} <= set(zip(exact.i, exact.j))


def test_confirmation_shards_are_committed_and_reused(planted, tmp_path):
    from brainscan_exp.dedup import load_grey

    finder = NearCopyFinder(confirm_shard=3, n_jobs=1)
    paths = planted[0]
    pairs = np.array([[0, 1], [0, 2], [1, 2], [2, 3], [3, 4]], dtype=np.int64)

    def load(k):
        return load_grey(paths[k], 256)

    first = finder.confirm(pairs, load, tmp_path)
    assert len(list(tmp_path.glob("confirm-*.parquet"))) == 2
    calls = []
    second = finder.confirm(pairs, lambda k: calls.append(k) or load(k), tmp_path)
    assert calls == [] and first.equals(second)
