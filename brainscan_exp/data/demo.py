"""A small, deterministic, generated dataset in the brief's layout: brain-like slices, some with
lesions. It lets the main job and the tests run anywhere, on a CPU, in minutes, with no download.

``truth.csv`` beside the layout holds the pool's labels, for evaluation only (as the real truth
files); two byte-identical copies are planted (a labelled image in the pool, a pool duplicate) so
the duplicate rules are exercised.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from brainscan_exp.data.layout import LABELLED_DIR, UNLABELLED_DIR


def brain_slice(rng: np.random.Generator, size: int = 256, lesion: bool = False, contrast: float = 1.0) -> np.ndarray:
    """An elliptical head with skull, textured brain, ventricles and optionally a bright lesion."""
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    a, b = rng.uniform(0.34, 0.42), rng.uniform(0.40, 0.46)
    cx, cy = rng.normal(0, 0.02, 2)
    r = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2
    img = np.zeros((size, size), np.float32)
    img[(r <= 1.0) & (r > 0.86)] = 0.85  # skull
    brain = r <= 0.86
    texture = (
        np.asarray(
            Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(3)),
            np.float32,
        )
        / 255
    )
    img[brain] = 0.45 + 0.35 * (texture[brain] - 0.5) * 2
    for side in (-1, 1):  # ventricles
        v = ((xx - cx - side * 0.06) / 0.04) ** 2 + ((yy - cy) / 0.12) ** 2 <= 1
        img[v] = 0.12
    if lesion:
        lx, ly = rng.uniform(-0.2, 0.2), rng.uniform(-0.22, 0.22)
        rad = rng.uniform(0.05, 0.11)
        d = np.sqrt((xx - cx - lx) ** 2 + (yy - cy - ly) ** 2) / rad
        img[(d <= 1.25) & brain] = 0.25  # oedema ring
        img[(d <= 1.0) & brain] = 0.95  # enhancing core
    img = np.clip(img * contrast + rng.normal(0, 0.03, img.shape), 0, 1)
    return (img * 255).astype(np.uint8)


def make_demo_dataset(
    root: str | Path,
    n_labelled_per_class: int = 20,
    n_unlabelled: int = 120,
    cancer_share: float = 0.5,
    size: int = 256,
    seed: int = 0,
) -> Path:
    """Write the dataset under ``root`` (replacing it); returns ``root``."""
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    truth = []

    def save(rel: str, lesion: bool) -> None:
        arr = brain_slice(rng, size, lesion, contrast=rng.uniform(0.8, 1.2))
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).convert("RGB").save(path, quality=95)
        truth.append((rel, "cancer" if lesion else "normal"))

    for name, lesion in (("cancer", True), ("normal", False)):
        for i in range(n_labelled_per_class):
            save(f"{LABELLED_DIR}/{name}/{name}_{i:03d}.jpg", lesion)
    for i in range(n_unlabelled):
        save(f"{UNLABELLED_DIR}/img_{i:04d}.jpg", rng.random() < cancer_share)
    (root / UNLABELLED_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copy(root / LABELLED_DIR / "cancer" / "cancer_000.jpg", root / UNLABELLED_DIR / "copy_of_labelled.jpg")
    shutil.copy(root / UNLABELLED_DIR / "img_0000.jpg", root / UNLABELLED_DIR / "copy_of_pool.jpg")
    truth += [
        (f"{UNLABELLED_DIR}/copy_of_labelled.jpg", "cancer"),
        (f"{UNLABELLED_DIR}/copy_of_pool.jpg", dict(truth)[f"{UNLABELLED_DIR}/img_0000.jpg"]),
    ]
    pd.DataFrame(truth, columns=["file", "label"]).to_csv(root / "truth.csv", index=False)
    return root
