"""Small greyscale copies of the images, for mosaics and image statistics (cached per dataset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from brainscan_exp.artefacts import atomic_write
from brainscan_exp.data.images import load_image


def load_thumbnail(path: str | Path, size: int = 128) -> np.ndarray:
    """Greyscale uint8 (size, size): JPEG draft decoding makes this cheap."""
    try:
        with Image.open(path) as img:
            img.draft("L", (size, size))
            img = img.convert("L")
    except OSError:
        img = load_image(path, "L")  # raises the error that names the file
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))


def load_thumbnails(paths, size: int = 128, cache_file: str | Path | None = None) -> np.ndarray:
    """(n, size, size) uint8 array; read from ``cache_file`` (.npy) when it holds the same paths."""
    paths = [str(p) for p in paths]
    if cache_file is not None:
        cache_file = Path(cache_file)
        index = cache_file.with_suffix(".txt")
        if cache_file.exists() and index.exists() and index.read_text().splitlines() == paths:
            return np.load(cache_file)
    thumbs = np.stack([load_thumbnail(p, size) for p in paths]) if paths else np.zeros((0, size, size), np.uint8)
    if cache_file is not None:

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a handle: np.save would add ".npy" to the temp name
                np.save(f, thumbs, allow_pickle=False)

        atomic_write(cache_file, save)
        atomic_write(index, lambda tmp: tmp.write_text("\n".join(paths)))
    return thumbs
