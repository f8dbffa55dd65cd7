"""Geometric confirmation of a candidate pair: is image j the same slice as image i, up to a
plausible affine transform (mirror, rotation, crop, resize) and a change of contrast?

Why two stages:

1. **ORB** (cheap, rotation-invariant, binary descriptors) against j and against its mirror (ORB is
   not mirror-invariant): a RANSAC affine with enough inliers says there *is* a consistent
   geometric relation, and which orientation. Most candidates stop here.
2. **SIFT** (sub-pixel keypoints) in that orientation only: a RANSAC affine refined on its inliers;
   the *precise* inliers are the matches it maps to within ``precise_tolerance`` pixels.

The second stage is what separates copies from their most dangerous look-alikes: adjacent slices of
the same patient share skull, eyes and large structures, so they get tens of ORB inliers, but
anatomy moves non-rigidly between slices, so their residuals spread over 1-3 pixels. A copy is an
exact resampling: its matches land within a fraction of a pixel. Measured on the brief's data
(1,506 images, 256-pixel working size): adjacent slices have <= 15 precise (< 0.5 px) inliers
and a precise fraction <= 0.27; copies, even heavily re-contrasted or sharpened, mostly have 20 to
hundreds, with a fraction of 0.3-1.

Both stages work on CLAHE-equalised images so that gamma and histogram changes keep the same
keypoints. The transform must also be plausible: singular values (scales) within ``scale_range``,
anisotropy (ratio of the two scales; a non-square crop resized back to a square gives up to ~1.2)
at most ``max_anisotropy``, no reflection, and the precise inliers must span at least
``min_coverage`` of the image (a few matches on one structure prove nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ConfirmParams", "FeatureCache", "PairResult", "confirm_pairs", "prepare_image"]


@dataclass(frozen=True)
class ConfirmParams:
    """Settings of :func:`confirm_pairs` (see :class:`~.finder.NearCopyFinder` for the defaults' why)."""

    work_size: int = 256
    clahe_clip: float = 2.0
    orb_features: int = 500
    min_coarse_inliers: int = 30
    sift_features: int = 800
    ratio: float = 0.8
    ransac_threshold: float = 3.0
    precise_tolerance: float = 0.5
    min_inliers: int = 20
    min_score: float = 0.25
    scale_range: tuple[float, float] = (0.5, 2.0)
    max_anisotropy: float = 1.5
    min_coverage: float = 0.1


@dataclass
class PairResult:
    coarse_inliers: int = 0  # ORB RANSAC inliers, best orientation
    mirror: bool = False  # j is matched through its left-right mirror
    loose_inliers: int = 0  # SIFT matches within ransac_threshold of the refined affine
    inliers: int = 0  # ... within precise_tolerance: the confirming count
    score: float = 0.0  # inliers / loose_inliers: 1 = pixel-exact resampling
    scale_min: float = float("nan")
    scale_max: float = float("nan")
    coverage: float = 0.0  # bounding-box area of the precise inliers in image i / image area
    confirmed: bool = False
    reason: str = "no candidate"  # why not confirmed ("ok" when confirmed)


def prepare_image(grey: np.ndarray, size: int, clahe_clip: float) -> np.ndarray:
    """Square ``size`` x ``size``, CLAHE-equalised (contrast-change invariant keypoints)."""
    if grey.shape != (size, size):
        interp = cv2.INTER_AREA if min(grey.shape) >= size else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (size, size), interpolation=interp)
    clahe = cv2.createCLAHE(clipLimit=clahe_clip, tileGridSize=(8, 8))
    return clahe.apply(np.ascontiguousarray(grey))


Features = tuple[np.ndarray, np.ndarray | None]  # (points float32 (k, 2), descriptors uint8 (k, d))


def _detect(detector, img: np.ndarray) -> Features:
    kps, desc = detector.detectAndCompute(img, None)
    pts = np.float32([kp.pt for kp in kps]).reshape(-1, 2)
    if desc is not None:
        desc = desc.astype(np.uint8)  # SIFT descriptors are integers in float32: 4x less memory
    return pts, desc


class FeatureCache:
    """Keypoints of each image, computed once per (image, detector, orientation) and kept in memory
    for the run. ``load(i)`` returns image i in greyscale (any size)."""

    def __init__(self, load: Callable[[int], np.ndarray], params: ConfirmParams):
        self.load = load
        self.params = params
        self.images: dict[int, np.ndarray] = {}
        self.orb: dict[tuple[int, bool], Features] = {}
        self.sift: dict[tuple[int, bool], Features] = {}

    def image(self, i: int) -> np.ndarray:
        if i not in self.images:
            p = self.params
            self.images[i] = prepare_image(self.load(i), p.work_size, p.clahe_clip)
        return self.images[i]

    def _oriented(self, i: int, mirror: bool) -> np.ndarray:
        img = self.image(i)
        return np.ascontiguousarray(img[:, ::-1]) if mirror else img

    def compute_orb(self, i: int) -> None:
        det = cv2.ORB_create(nfeatures=self.params.orb_features)
        for mirror in (False, True):
            self.orb[(i, mirror)] = _detect(det, self._oriented(i, mirror))

    def compute_sift(self, key: tuple[int, bool]) -> None:
        det = cv2.SIFT_create(nfeatures=self.params.sift_features)
        self.sift[key] = _detect(det, self._oriented(*key))

    def release(self, i: int) -> None:
        self.images.pop(i, None)
        for store in (self.orb, self.sift):
            store.pop((i, False), None)
            store.pop((i, True), None)


def _matches(fa: Features, fb: Features, norm: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowe-ratio matches: points in b (src) and in a (dst)."""
    (pa, da), (pb, db) = fa, fb
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
    if norm == cv2.NORM_L2:  # OpenCV's L2 matcher is ~5x faster on float32 than on uint8
        da, db = da.astype(np.float32), db.astype(np.float32)
    knn = cv2.BFMatcher(norm).knnMatch(da, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if not good:
        return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
    return pb[[m.trainIdx for m in good]], pa[[m.queryIdx for m in good]]


def _ransac_affine(src: np.ndarray, dst: np.ndarray, threshold: float, refine: bool):
    if len(src) < 4:
        return None, 0
    M, mask = cv2.estimateAffine2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000, confidence=0.995, refineIters=10
    )
    if M is None or mask is None:
        return None, 0
    inl = mask.ravel().astype(bool)
    if refine and inl.sum() >= 6:  # robust re-fit on the inliers only: removes RANSAC's sample noise
        M2, _ = cv2.estimateAffine2D(src[inl], dst[inl], method=cv2.LMEDS)
        if M2 is not None:
            M = M2
    return M, int(inl.sum())


def _coarse(cache: FeatureCache, i: int, j: int) -> tuple[int, bool]:
    p = cache.params
    best = (0, False)
    for mirror in (False, True):
        src, dst = _matches(cache.orb[(i, False)], cache.orb[(j, mirror)], cv2.NORM_HAMMING, p.ratio)
        _, n_in = _ransac_affine(src, dst, 4.0, refine=False)
        if n_in > best[0]:
            best = (n_in, mirror)
    return best


def _fine(cache: FeatureCache, i: int, j: int, res: PairResult) -> PairResult:
    p = cache.params
    src, dst = _matches(cache.sift[(i, False)], cache.sift[(j, res.mirror)], cv2.NORM_L2, p.ratio)
    M, _ = _ransac_affine(src, dst, p.ransac_threshold, refine=True)
    if M is None:
        res.reason = "no fine transform"
        return res
    resid = np.linalg.norm(src @ M[:, :2].T + M[:, 2] - dst, axis=1)
    within = resid < p.ransac_threshold
    precise = resid < p.precise_tolerance
    res.loose_inliers, res.inliers = int(within.sum()), int(precise.sum())
    res.score = res.inliers / res.loose_inliers if res.loose_inliers else 0.0
    sv = np.linalg.svd(M[:, :2], compute_uv=False)
    res.scale_min, res.scale_max = float(sv.min()), float(sv.max())
    if res.inliers >= 3:
        span = dst[precise].max(0) - dst[precise].min(0)
        res.coverage = float(span[0] * span[1]) / p.work_size**2
    lo, hi = p.scale_range
    if res.inliers < p.min_inliers:
        res.reason = "few precise inliers"
    elif res.score < p.min_score:
        res.reason = "imprecise geometry"
    elif np.linalg.det(M[:, :2]) <= 0:
        res.reason = "reflection"
    elif not (lo <= res.scale_min and res.scale_max <= hi):
        res.reason = "implausible scale"
    elif res.scale_max / res.scale_min > p.max_anisotropy:
        res.reason = "implausible anisotropy"
    elif res.coverage < p.min_coverage:
        res.reason = "small coverage"
    else:
        res.confirmed, res.reason = True, "ok"
    return res


def _parallel(fn, items: Iterable, n_jobs: int) -> list:
    items = list(items)
    if n_jobs <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:  # OpenCV releases the GIL
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (8 * n_jobs))))


def confirm_pairs(
    pairs: np.ndarray,
    load: Callable[[int], np.ndarray],
    params: ConfirmParams = ConfirmParams(),
    n_jobs: int = 1,
    cache: FeatureCache | None = None,
) -> list[PairResult]:
    """Confirm each ``(i, j)`` of ``pairs`` (``(m, 2)`` ints); one :class:`PairResult` per pair.

    Features are computed once per image (ORB, both orientations) and once per needed
    (image, orientation) (SIFT), in ``n_jobs`` threads, then the pairs are matched.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    cache = cache or FeatureCache(load, params)
    images = sorted(set(pairs.ravel().tolist()))
    _parallel(cache.image, images, n_jobs)
    _parallel(cache.compute_orb, [i for i in images if (i, False) not in cache.orb], n_jobs)
    coarse = _parallel(lambda ij: _coarse(cache, int(ij[0]), int(ij[1])), pairs, n_jobs)
    results = [PairResult(coarse_inliers=n_in, mirror=mirror, reason="few coarse inliers") for n_in, mirror in coarse]
    todo = [k for k, r in enumerate(results) if r.coarse_inliers >= params.min_coarse_inliers]
    needed = {(int(pairs[k, 0]), False) for k in todo} | {(int(pairs[k, 1]), results[k].mirror) for k in todo}
    _parallel(cache.compute_sift, sorted(needed - set(cache.sift)), n_jobs)
    fine = _parallel(lambda k: _fine(cache, int(pairs[k, 0]), int(pairs[k, 1]), results[k]), todo, n_jobs)
    for k, r in zip(todo, fine):
        results[k] = r
    return results
