"""``NearCopyFinder``: hashes -> candidate pairs -> geometric confirmation -> groups, as a
scikit-learn style estimator; and ``duplicates_table``, its result in the catalogue's shape.

Why an estimator: hyperparameters live in ``__init__`` (so ``get_params``/``set_params``/``clone``
and Hydra instantiation work like for the clustering estimators), and everything learnt from the
data ends with ``_``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from brainscan_exp.artefacts import atomic_write

from .candidates import cap_per_image, embedding_candidates, hash_candidates, merge_candidates
from .confirm import ConfirmParams, FeatureCache, PairResult, confirm_pairs
from .groups import NO_GROUP, connected_groups
from .hashing import FAMILIES, compute_hashes, load_grey

__all__ = ["NearCopyFinder", "PAIR_COLUMNS", "duplicates_table"]

AUTO_ANN_FROM = 50_000
"""``ann_index="auto"``: exact neighbours below this many images, an approximate index from it;
``n_bands="auto"``: 6 bands below it, 2 from it."""

RESULT_COLUMNS = list(PairResult.__dataclass_fields__)

PAIR_COLUMNS = [
    "i",
    "j",
    "hamming",
    "cosine",
    "inliers",
    "score",
    "confirmed",
    "kind",
    "source",
    "transform",
    "coarse_inliers",
    "loose_inliers",
    "mirror",
    "scale_min",
    "scale_max",
    "coverage",
    "reason",
]


class NearCopyFinder(BaseEstimator):
    """Find near copies (flips, rotations, crops, resizes, small rotations, re-contrasts) in a list
    of images and group them.

    Defaults, measured on the brief's data (1,506 MRI JPEGs, ~2 minutes on 2 cores at most):

    hash_methods, hash_families : ("phash", "dhash"), ("full", "head")
        pHash + dHash summed per family; the "head" family (head bounding box) catches crops and
        zooms that move the full-frame hashes far.
    max_hamming : 22
        On the summed 128-bit family distance (pHash + dHash, same transform). On the brief's data:
        20 gives 1,655 candidates and 510 confirmed pairs, 22 gives 2,545 and 521, 24 ~4,100 and
        525 (every extra pair was a true zoomed or cropped copy) for +8 s each step. Adding CNN
        embedding neighbours to 20 found 12 more, all at 21-42 bits.
    n_bands : "auto"
        Bands per 64-bit hash. 6 (~11 bits each) below 50,000 images: exact for pairs where one
        hash of the family is within 5 bits; on the brief's data it returned 99.4% of the pairs
        that the exact count (``max_hamming // 2 + 1`` = 12; pass None for it) returns, and every
        one of them that was confirmed, in 2.4 s instead of 14.5 s. Collisions grow as
        N^2 / 2^(64 / n_bands), so from 50,000 images 2 bands of 32 bits (exact within 1 bit per
        hash; the embedding route finds the rest): in ``scripts/bench_scale.py`` 3 bands of ~21
        bits made 1.9 M raw pairs at 250 k images (time exponent 2.1), 2 bands 81 k.
    max_bucket : 100_000
        Skip band buckets bigger than this (canonical x transformed entries).
    n_neighbors, max_cosine : 5, 0.1
        Embedding route (only when ``fit`` gets embeddings): each image's 5 nearest neighbours
        within cosine distance 0.1 (confirmed copies found only this way were at 0.01-0.10).
    ann_index, ann_search : "auto", "nprobe=16"
        How the neighbours are searched: ``"exact"`` (scikit-learn brute force, quadratic), a
        faiss ``index_factory`` string with its search parameters (``{nlist}``: ~2 sqrt(n) lists),
        or ``"auto"``: exact below 50,000 images, else ``"PCA128,IVF{nlist},Flat"`` (plain
        ``"IVF{nlist},Flat"`` for 128 dimensions or fewer) probed 16 lists deep. Chosen by
        ``scripts/bench_scale.py`` at 100 k: the fastest with planted-copy recall >= 0.95 against
        exact kNN (0.964, est. 47 s for every image; IVF SQ8: 1.000, 60 s; IVF Flat: 1.000,
        120 s; HNSW32: 0.745). Every neighbour's cosine is recomputed from the vectors, and the
        hash route finds most of what the index misses (0.9998 of the planted copies together).
    max_candidates : 10
        Geometric confirmation bounded per image: a pair is confirmed only when it is among the
        10 best candidates (by normalised Hamming or cosine distance) of both its images, so
        there are at most 5 confirmations per image on average; None: all (the behaviour
        before). 6 (at most 3 per image) split a planted group of 9 copies in the tests (the
        85 % crop ranks last in its siblings' lists). Its effect on the brief's groups is in
        ``scripts/results/bench_scale.json`` (``brief.by_cap``).
    confirm_shard : 4096
        Pairs confirmed per shard: features are kept for one shard at a time, and with ``fit``'s
        ``work_dir`` each shard's results are committed there, so a killed run resumes.
    work_size, clahe_clip : 256, 2.0
        Confirmation resolution and CLAHE clip limit.
    orb_features, min_coarse_inliers : 500, 30
        ORB stage: a pair needs 30 RANSAC-affine inliers (4 px) to go to the SIFT stage. Every
        confirmed pair had >= 44, and half the candidates stop here.
    sift_features, ratio, ransac_threshold, precise_tolerance : 800, 0.8, 3.0, 0.5
        SIFT stage: Lowe ratio, RANSAC threshold (px), and the residual (px) under which a match
        counts as a precise inlier.
    min_inliers, min_score : 20, 0.25
        A pair is confirmed with >= 20 precise inliers making >= 25% of the loose ones. Adjacent
        slices reached 15 and 0.27 at most; copies below 20 are usually joined to their group
        through another member.
    scale_range, max_anisotropy, min_coverage : (0.5, 2.0), 1.5, 0.1
        Plausible transform: both scales within the range, scale ratio <= 1.5, and the precise
        inliers' bounding box >= 10% of the image.
    n_jobs : 2
        Threads for hashing and confirmation (decoding and OpenCV release the GIL).
    verbose : False
        Print the phases and their times.

    Attributes
    ----------
    n_images_ : int
    hashes_ : dict of ``(n_images_, 8)`` uint64 arrays, ``"<family>_<method>"``
    pairs_ : DataFrame, one row per candidate pair (``i < j``) with :data:`PAIR_COLUMNS`: the cheap
        signals (``hamming``: best family distance over transforms, in bits of 128; ``cosine``:
        embedding cosine distance, NaN without embeddings), the confirmation (``inliers``: precise
        SIFT inliers; ``score``: their share of the loose inliers, 1 = pixel-exact; ``confirmed``;
        ``reason``) and ``kind`` = "near".
    groups_ : int array (n_images_,), group id of each image; :data:`~.groups.NO_GROUP` (-1) for an
        image with no confirmed near copy. Ids are 0.. in the order of each group's first image.
    n_groups_ : int
    timings_ : dict, seconds per phase (``hashing``, ``candidates``, ``confirmation``, ``groups``,
        ``total``)
    """

    def __init__(
        self,
        hash_methods: Sequence[str] = ("phash", "dhash"),
        hash_families: Sequence[str] = FAMILIES,
        max_hamming: int = 22,
        n_bands: int | str | None = "auto",
        max_bucket: int | None = 100_000,
        n_neighbors: int = 5,
        max_cosine: float = 0.1,
        ann_index: str = "auto",
        ann_search: str = "nprobe=16",
        max_candidates: int | None = 10,
        confirm_shard: int = 4096,
        work_size: int = 256,
        clahe_clip: float = 2.0,
        orb_features: int = 500,
        min_coarse_inliers: int = 30,
        sift_features: int = 800,
        ratio: float = 0.8,
        ransac_threshold: float = 3.0,
        precise_tolerance: float = 0.5,
        min_inliers: int = 20,
        min_score: float = 0.25,
        scale_range: tuple[float, float] = (0.5, 2.0),
        max_anisotropy: float = 1.5,
        min_coverage: float = 0.1,
        n_jobs: int = 2,
        verbose: bool = False,
    ):
        self.hash_methods = hash_methods
        self.hash_families = hash_families
        self.max_hamming = max_hamming
        self.n_bands = n_bands
        self.max_bucket = max_bucket
        self.n_neighbors = n_neighbors
        self.max_cosine = max_cosine
        self.ann_index = ann_index
        self.ann_search = ann_search
        self.max_candidates = max_candidates
        self.confirm_shard = confirm_shard
        self.work_size = work_size
        self.clahe_clip = clahe_clip
        self.orb_features = orb_features
        self.min_coarse_inliers = min_coarse_inliers
        self.sift_features = sift_features
        self.ratio = ratio
        self.ransac_threshold = ransac_threshold
        self.precise_tolerance = precise_tolerance
        self.min_inliers = min_inliers
        self.min_score = min_score
        self.scale_range = scale_range
        self.max_anisotropy = max_anisotropy
        self.min_coverage = min_coverage
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _confirm_params(self) -> ConfirmParams:
        return ConfirmParams(
            work_size=self.work_size,
            clahe_clip=self.clahe_clip,
            orb_features=self.orb_features,
            min_coarse_inliers=self.min_coarse_inliers,
            sift_features=self.sift_features,
            ratio=self.ratio,
            ransac_threshold=self.ransac_threshold,
            precise_tolerance=self.precise_tolerance,
            min_inliers=self.min_inliers,
            min_score=self.min_score,
            scale_range=tuple(self.scale_range),
            max_anisotropy=self.max_anisotropy,
            min_coverage=self.min_coverage,
        )

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(f"[NearCopyFinder] {msg}", flush=True)

    def _bands(self, n: int) -> int | None:
        if self.n_bands != "auto":
            return self.n_bands
        return 6 if n < AUTO_ANN_FROM else 2

    def _ann(self, n: int, dim: int) -> str:
        if self.ann_index != "auto":
            return self.ann_index
        if n < AUTO_ANN_FROM:
            return "exact"
        return "PCA128,IVF{nlist},Flat" if dim > 128 else "IVF{nlist},Flat"

    def fit(
        self,
        paths: Sequence[str | Path],
        embeddings: np.ndarray | None = None,
        hashes: dict[str, np.ndarray] | None = None,
        work_dir: str | Path | None = None,
    ) -> NearCopyFinder:
        """Hash, generate candidates, confirm and group the images at ``paths``.

        ``embeddings``: optional ``(len(paths), d)`` matrix (row k = image k; a memmap is read in
        blocks) whose nearest neighbours add candidates the hashes miss. ``hashes``: precomputed
        :func:`~.hashing.compute_hashes` output (skips hashing). ``work_dir``: where each
        confirmation shard is committed; a rerun with the same candidates reuses them.
        """
        paths = [str(p) for p in paths]
        n = len(paths)
        if embeddings is not None:
            if embeddings.ndim != 2 or len(embeddings) != n:
                raise ValueError(f"embeddings must be (n_images={n}, d), got {embeddings.shape}")
        timings: dict[str, float] = {}
        start = t0 = time.perf_counter()

        self.hashes_ = (
            hashes
            if hashes is not None
            else compute_hashes(paths, self.hash_methods, self.hash_families, n_jobs=self.n_jobs)
        )
        timings["hashing"] = time.perf_counter() - t0
        self._log(f"hashed {n} images in {timings['hashing']:.1f} s")

        t0 = time.perf_counter()
        cands = self.candidates(self.hashes_, embeddings)
        timings["candidates"] = time.perf_counter() - t0
        self._log(f"{len(cands)} candidate pairs after the per-image cap in {timings['candidates']:.1f} s")

        t0 = time.perf_counter()
        res = self.confirm(
            cands[["i", "j"]].to_numpy(np.int64), lambda k: load_grey(paths[k], self.work_size), work_dir
        )
        res.index = cands.index
        timings["confirmation"] = time.perf_counter() - t0
        pairs = pd.concat([cands, res], axis=1).assign(kind="near")
        self.pairs_ = pairs[PAIR_COLUMNS].astype({"confirmed": bool, "mirror": bool})
        self._log(f"{int(self.pairs_.confirmed.sum())} confirmed pairs in {timings['confirmation']:.1f} s")

        t0 = time.perf_counter()
        confirmed = self.pairs_.loc[self.pairs_.confirmed, ["i", "j"]].to_numpy(np.int64)
        self.groups_ = connected_groups(n, confirmed)
        self.n_groups_ = int(self.groups_.max() + 1) if n else 0
        timings["groups"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - start
        self.timings_ = timings
        self.n_images_ = n
        self._log(
            f"{self.n_groups_} groups holding {int((self.groups_ != NO_GROUP).sum())} images; "
            f"total {timings['total']:.1f} s"
        )
        return self

    def candidates(self, hashes: dict[str, np.ndarray], embeddings: np.ndarray | None = None) -> pd.DataFrame:
        """Candidate pairs of both routes with their cheap signals, capped per image
        (:func:`~.candidates.merge_candidates` columns)."""
        hashed = hash_candidates(
            hashes, self.hash_families, self.max_hamming, self._bands(len(next(iter(hashes.values())))), self.max_bucket
        )
        knn = None
        if embeddings is not None and self.n_neighbors > 0:
            index = self._ann(*embeddings.shape)
            knn = embedding_candidates(
                embeddings, self.n_neighbors, self.max_cosine, index, "" if index == "exact" else self.ann_search
            )
        cands = merge_candidates(hashed, knn, hashes, embeddings)
        self._log(
            f"{len(cands)} candidate pairs ({len(hashed)} from hashes, {0 if knn is None else len(knn)} from embeddings)"
        )
        return cap_per_image(cands, self.max_candidates, self.max_hamming, self.max_cosine)

    def confirm(self, pairs: np.ndarray, load, work_dir: str | Path | None = None) -> pd.DataFrame:
        """Geometric confirmation of ``pairs`` (``(m, 2)``), ``confirm_shard`` pairs at a time
        (features of one shard in memory); with ``work_dir``, each shard's results are committed
        there under a digest of its pairs and the settings, and reused by a rerun."""
        params = self._confirm_params()
        frames = []
        for s in range(0, len(pairs), self.confirm_shard):
            part = pairs[s : s + self.confirm_shard]
            done = None
            if work_dir is not None:
                digest = hashlib.sha256(part.tobytes() + repr(params).encode()).hexdigest()[:20]
                done = Path(work_dir) / f"confirm-{s // self.confirm_shard:06d}-{digest}.parquet"
                if done.exists():
                    frames.append(pd.read_parquet(done))
                    continue
            cache = FeatureCache(load, params)
            results = confirm_pairs(part, cache.load, params, self.n_jobs, cache)
            frame = pd.DataFrame([vars(r) for r in results], columns=RESULT_COLUMNS)
            if done is not None:
                atomic_write(done, lambda tmp, f=frame: f.to_parquet(tmp, index=False))
            frames.append(frame)
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS})
        return pd.concat(frames, ignore_index=True)

    def fit_predict(self, paths: Sequence[str | Path], embeddings: np.ndarray | None = None) -> np.ndarray:
        """``fit`` then return ``groups_``."""
        return self.fit(paths, embeddings).groups_


def duplicates_table(files: Sequence[str], finder: NearCopyFinder) -> pd.DataFrame:
    """One row per file in a near-copy group: ``file, group, kind ("near"), score``.

    ``files[k]`` names image k of the fitted ``finder`` (a path or a dataset-relative name).
    ``score`` is the best confirming score among that file's confirmed pairs (a file joined to its
    group only through others still has at least one confirmed pair).
    """
    check_is_fitted(finder, ["groups_", "pairs_"])
    files = list(files)
    if len(files) != finder.n_images_:
        raise ValueError(f"{len(files)} files for a finder fitted on {finder.n_images_} images")
    conf = finder.pairs_[finder.pairs_.confirmed]
    best = (
        pd.concat([conf[["i", "score"]].rename(columns={"i": "k"}), conf[["j", "score"]].rename(columns={"j": "k"})])
        .groupby("k")
        .score.max()
    )
    members = np.flatnonzero(finder.groups_ != NO_GROUP)
    out = pd.DataFrame(
        {
            "file": [files[k] for k in members],
            "group": finder.groups_[members].astype(int),
            "kind": "near",
            "score": best.reindex(members).to_numpy(float),
        }
    )
    return out.sort_values(["group", "file"]).reset_index(drop=True)
