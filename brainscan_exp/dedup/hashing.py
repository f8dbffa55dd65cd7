"""Perceptual hashes of every image under the 8 dihedral transforms.

Why: near copies are often mirrored or rotated by 90/180 degrees, which changes a perceptual hash
completely. Hashing each image under all 8 transforms lets the candidate stage compare image i's
canonical hash (transform 0) with the 8 hashes of image j, so a flipped copy is at distance ~0.

Two framings ("families") are hashed:

- ``full``: the whole frame; catches flips, rotations, resizes and re-contrasts;
- ``head``: the bounding box of the largest bright object (the head) stretched to a square; a crop
  or zoom that keeps the head in the frame changes ``full`` a lot but ``head`` hardly at all.

Each family holds a pHash and a dHash (``imagehash``); the candidate stage adds them up, which
separates copies from different slices better than either hash alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image

__all__ = [
    "FAMILIES",
    "HASH_METHODS",
    "N_TRANSFORMS",
    "compute_hashes",
    "dihedral",
    "hash_image",
    "head_box",
    "load_grey",
]

N_TRANSFORMS = 8
"""Dihedral transforms: k in 0..3 = rotation by k*90 degrees; 4..7 = left-right mirror, then
rotation by (k-4)*90 degrees. Transform 0 is the identity (the image's "canonical" hash)."""

HASH_METHODS: dict[str, Callable[[Image.Image], imagehash.ImageHash]] = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "whash": lambda img: imagehash.whash(img, image_scale=64),
}
"""64-bit hashes available (8x8 bits each). whash is the slowest and adds little here."""

FAMILIES = ("full", "head")

HASH_BASE = 64
"""Side of the small square every hash is computed from: pHash resizes to 32, dHash to 9x8, so a
64-pixel base loses nothing they use and makes the 8 transforms cheap."""

_DECODE_SIDE = 128
"""Images are decoded at about this side (JPEG DCT scaling, see :func:`load_grey`) for hashing."""


def load_grey(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode ``path`` as 8-bit greyscale; with ``size``, return a ``size`` x ``size`` array.

    JPEGs are decoded directly at a reduced scale (``Image.draft``: the DCT does the
    downsampling, several times faster than decoding 512x512 and resizing). The images are RGB with
    R=G=B, so the luma conversion is the grey level itself.
    """
    with Image.open(path) as img:
        if size is not None:
            img.draft("L", (size, size))
        grey = np.asarray(img.convert("L"))
    if size is not None and grey.shape != (size, size):
        interp = cv2.INTER_AREA if min(grey.shape) >= size else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (size, size), interpolation=interp)
    return np.ascontiguousarray(grey)


def dihedral(arr: np.ndarray, k: int) -> np.ndarray:
    """Transform ``k`` (see :data:`N_TRANSFORMS`) of a 2-D array, as a contiguous copy."""
    if k >= 4:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(np.rot90(arr, k % 4))


def head_box(
    grey: np.ndarray, threshold_fraction: float = 0.1, min_threshold: float = 10.0
) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the largest bright connected object (the head).

    The threshold is a fraction of the 99th percentile so that a darker or brighter copy (gamma,
    histogram change) gives the same box; a closing step joins the skull to the brain, and taking
    the largest component ignores burnt-in text and rulers. Falls back to the whole frame.
    """
    h, w = grey.shape
    smooth = cv2.GaussianBlur(grey, (5, 5), 0)
    thr = max(min_threshold, threshold_fraction * float(np.percentile(smooth, 99)))
    mask = (smooth > thr).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return 0, h, 0, w
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = stats[best]
    if area < 0.02 * h * w or bw < 8 or bh < 8:
        return 0, h, 0, w
    return int(y), int(y + bh), int(x), int(x + bw)


def _to_uint64(h: imagehash.ImageHash) -> np.uint64:
    bits = np.asarray(h.hash, dtype=bool).ravel()
    if bits.size != 64:
        raise ValueError(f"expected a 64-bit hash, got {bits.size} bits")
    return np.frombuffer(np.packbits(bits).tobytes(), dtype=">u8")[0].astype(np.uint64)


def hash_image(
    grey: np.ndarray, methods: Sequence[str] = ("phash", "dhash"), families: Sequence[str] = FAMILIES
) -> dict[str, np.ndarray]:
    """Hashes of one greyscale image: ``{"<family>_<method>": uint64 array of shape (8,)}``."""
    out: dict[str, np.ndarray] = {}
    for family in families:
        if family == "full":
            crop = grey
        elif family == "head":
            top, bottom, left, right = head_box(grey)
            crop = grey[top:bottom, left:right]
        else:
            raise ValueError(f"unknown hash family {family!r}; expected one of {FAMILIES}")
        base = cv2.resize(crop, (HASH_BASE, HASH_BASE), interpolation=cv2.INTER_AREA)
        images = [Image.fromarray(dihedral(base, k)) for k in range(N_TRANSFORMS)]
        for method in methods:
            fn = HASH_METHODS[method]
            out[f"{family}_{method}"] = np.array([_to_uint64(fn(im)) for im in images], dtype=np.uint64)
    return out


def compute_hashes(
    paths: Sequence[str | Path],
    methods: Sequence[str] = ("phash", "dhash"),
    families: Sequence[str] = FAMILIES,
    decode_side: int = _DECODE_SIDE,
    n_jobs: int = 1,
) -> dict[str, np.ndarray]:
    """Hashes of every image: ``{"<family>_<method>": uint64 array (len(paths), 8)}``.

    Column ``k`` is the hash of transform ``k``; column 0 is the canonical hash. Every image is
    decoded at ``decode_side`` (whatever its own size), so resized copies hash alike. ``n_jobs``
    threads (JPEG decoding, OpenCV and the DCT release the GIL); the result does not depend on it.
    """
    unknown = set(methods) - set(HASH_METHODS)
    if unknown:
        raise ValueError(f"unknown hash methods {sorted(unknown)}; expected some of {sorted(HASH_METHODS)}")
    keys = [f"{f}_{m}" for f in families for m in methods]
    out = {k: np.zeros((len(paths), N_TRANSFORMS), dtype=np.uint64) for k in keys}

    def one(idx: int) -> None:
        hashes = hash_image(load_grey(paths[idx], decode_side), methods, families)
        for k in keys:
            out[k][idx] = hashes[k]

    if n_jobs <= 1 or len(paths) < 2:
        for idx in range(len(paths)):
            one(idx)
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            list(pool.map(one, range(len(paths)), chunksize=64))
    return out
