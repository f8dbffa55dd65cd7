"""Decoding images the same way everywhere, with errors that name the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from brainscan_exp.data.errors import BadImageError


def load_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Fully decode ``path``; a truncated or non-image file raises :class:`BadImageError`."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert(mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(
            f"This file cannot be decoded as an image ({exc}):",
            [path],
            "delete or replace it (or add dataset.on_bad_file=skip to leave it out and list it in bad_files.csv).",
        ) from exc


def pixel_hash(img: Image.Image) -> str:
    """Hash of the decoded pixels (mode, size and values): byte-different re-encodings of the same
    pixels share it, so it identifies an image whatever its file."""
    arr = np.asarray(img)
    digest = hashlib.sha1(f"{img.mode}:{arr.shape}".encode())
    digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()
