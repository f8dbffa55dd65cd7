"""Image preprocessing: MRI-aware steps, then exactly what the backbone's pretrained config expects.

MRI steps (each a config option a sweep can vary) run on the greyscale slice:
- ``head_crop``: crop to the head's bounding box (squared, with a margin), so the black border does
  not eat the input resolution;
- ``intensity``: ``percentile`` clipping and rescaling, robust to hot pixels and contrast changes;
- ``equalize``: ``hist`` (global) or ``clahe`` (adaptive) histogram equalisation.
Then the model's own resize / crop / interpolation / mean-std (from timm's pretrained config) apply.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import timm.data
import torch
from PIL import Image, ImageOps
from torchvision import transforms as T

from brainscan_exp.data.images import load_image


@dataclass(frozen=True)
class MRIPreprocess:
    head_crop: bool = False
    crop_margin: float = 0.05
    foreground_threshold: int = 20
    intensity: str = "none"  # none | percentile
    percentiles: tuple[float, float] = (1.0, 99.0)
    equalize: str = "none"  # none | hist | clahe
    clahe_clip: float = 2.0  # OpenCV's clipLimit (contrast limit per 8x8 tile)

    def __post_init__(self):
        if self.intensity not in {"none", "percentile"}:
            raise ValueError(f"preprocess.intensity must be none|percentile, got {self.intensity!r}")
        if self.equalize not in {"none", "hist", "clahe"}:
            raise ValueError(f"preprocess.equalize must be none|hist|clahe, got {self.equalize!r}")
        object.__setattr__(self, "percentiles", tuple(float(p) for p in self.percentiles))

    @property
    def is_identity(self) -> bool:
        return not self.head_crop and self.intensity == "none" and self.equalize == "none"

    def as_dict(self) -> dict:
        return asdict(self)

    def head_box(self, grey: np.ndarray) -> tuple[int, int, int, int]:
        """Square box (left, top, right, bottom) around the foreground, with a margin."""
        step = max(1, min(grey.shape) // 128)  # the box needs no more than ~128 px of resolution
        mask = grey[::step, ::step] > self.foreground_threshold
        if mask.sum() < 0.01 * mask.size:
            return 0, 0, grey.shape[1], grey.shape[0]
        # a row/column belongs to the head when 2 % of it is foreground: speckle noise does not count
        rows = np.flatnonzero(mask.mean(1) > 0.02)
        cols = np.flatnonzero(mask.mean(0) > 0.02)
        if not len(rows) or not len(cols):
            return 0, 0, grey.shape[1], grey.shape[0]
        top, bottom, left, right = rows[0] * step, (rows[-1] + 1) * step, cols[0] * step, (cols[-1] + 1) * step
        side = max(bottom - top, right - left) * (1 + 2 * self.crop_margin)
        cy, cx = (top + bottom) / 2, (left + right) / 2
        half = side / 2
        return int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half))

    def __call__(self, img: Image.Image, work_size: int | None = None) -> Image.Image:
        """Greyscale PIL image in, greyscale PIL image out (``apply`` on its pixels)."""
        img = img.convert("L")
        if self.is_identity:
            return img
        return Image.fromarray(self.apply(np.asarray(img), work_size))

    def apply(self, grey: np.ndarray, work_size: int | None = None) -> np.ndarray:
        """uint8 (H, W) in and out. With ``work_size``, the intensity steps run after downscaling
        to that short side (the model's resize target): same result for the model, several times
        less work for CLAHE."""
        if self.is_identity:
            return grey
        if self.head_crop:
            box = self.head_box(grey)
            side = min(box[2] - box[0], box[3] - box[1])
            grey = resize_box(grey, box, work_size) if work_size and side > work_size else crop_padded(grey, box)
        elif work_size and min(grey.shape) > work_size:
            grey = resize_box(grey, (0, 0, grey.shape[1], grey.shape[0]), work_size)
        if self.intensity == "percentile":
            lo, hi = _percentiles_uint8(grey, self.percentiles)
            lut = np.clip((np.arange(256, dtype=np.float32) - lo) / max(hi - lo, 1.0), 0, 1)
            grey = cv2.LUT(grey, (lut * 255).round().astype(np.uint8))
        if self.equalize == "hist":
            return np.asarray(ImageOps.equalize(Image.fromarray(grey)))
        if self.equalize == "clahe":
            grey = cv2.createCLAHE(clipLimit=self.clahe_clip, tileGridSize=(8, 8)).apply(np.ascontiguousarray(grey))
        return grey


def crop_padded(grey: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``grey[top:bottom, left:right]``, black where the box leaves the image (as PIL's ``crop``)."""
    left, top, right, bottom = box
    h, w = grey.shape
    pads = (max(-top, 0), max(bottom - h, 0), max(-left, 0), max(right - w, 0))
    inside = grey[max(top, 0) : min(bottom, h), max(left, 0) : min(right, w)]
    if not any(pads):
        return inside
    return cv2.copyMakeBorder(np.ascontiguousarray(inside), *pads, cv2.BORDER_CONSTANT, value=0)


def resize_box(grey: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The ``box`` (left, top, right, bottom) of ``grey`` with its short side downscaled to ``size``,
    black where the box leaves the image: only the part inside the image is resized, straight from
    a view of it (no padded copy at full resolution)."""
    left, top, right, bottom = box
    scale = size / min(right - left, bottom - top)
    out = np.zeros((round((bottom - top) * scale), round((right - left) * scale)), np.uint8)
    h, w = grey.shape
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    dx0, dy0 = round((x0 - left) * scale), round((y0 - top) * scale)
    dx1, dy1 = min(round((x1 - left) * scale), out.shape[1]), min(round((y1 - top) * scale), out.shape[0])
    if dx1 > dx0 and dy1 > dy0:
        out[dy0:dy1, dx0:dx1] = downscale(grey[y0:y1, x0:x1], (dx1 - dx0, dy1 - dy0))
    return out


def downscale(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``grey`` resized down to ``size`` (width, height), antialiased: bicubic to twice the target,
    then a 2x2 box average (after an integer box reduction when the source is 4x larger or more).
    Against PIL's antialiased bicubic: mean |difference| 0.3 grey levels, a third of the cost
    (``scripts/bench_features.py``, ``resize`` table)."""
    w, h = size
    k = int(min(grey.shape[0] / h, grey.shape[1] / w) / 2)
    if k >= 2:
        grey = cv2.resize(grey, (grey.shape[1] // k, grey.shape[0] // k), interpolation=cv2.INTER_AREA)
    grey = cv2.resize(grey, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def _percentiles_uint8(arr: np.ndarray, percentiles: tuple[float, float]) -> tuple[int, int]:
    """Percentiles of a uint8 image from its histogram: ~20x faster than np.percentile."""
    counts = cv2.calcHist([np.ascontiguousarray(arr)], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(counts, dtype=np.float64) / arr.size
    lo, hi = (int(np.searchsorted(cdf, q / 100.0)) for q in percentiles)
    return lo, hi


class GreyEvalTransform:
    """timm's eval transform (resize the short side to ``size / crop_pct``, centre crop,
    normalise) applied to a greyscale slice with numpy: the same values as replicating the
    channel and running timm's torchvision pipeline, at a fraction of the cost (tiny torch ops
    on a 2-core CPU cost more than the pixels they touch)."""

    def __init__(self, data_config: dict):
        self.size = data_config["input_size"][-1]
        self.scale_size = math.floor(self.size / data_config["crop_pct"])
        self.resample = timm.data.transforms.str_to_pil_interp(data_config["interpolation"])
        mean = np.asarray(data_config["mean"], np.float32)[:, None]
        std = np.asarray(data_config["std"], np.float32)[:, None]
        # one (256,) table per channel: uint8 -> (v / 255 - mean) / std, the same float32 ops
        # as ToTensor + Normalize, looked up instead of computed per pixel
        self.luts = (np.arange(256, dtype=np.float32)[None] / 255.0 - mean) / std
        if data_config.get("crop_mode", "center") != "center":
            raise ValueError(f"crop_mode {data_config['crop_mode']!r} is not supported; use center")

    def __call__(self, grey: Image.Image | np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.array(grey))

    def array(self, grey: Image.Image | np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The (C, H, W) float32 model input; written into ``out`` when given (a row of a batch)."""
        arr = np.asarray(grey)
        h, w = arr.shape
        scale = self.scale_size / min(w, h)
        new = (
            (self.scale_size, max(self.scale_size, int(h * scale)))
            if w <= h
            else (max(self.scale_size, int(w * scale)), self.scale_size)
        )
        if new != (w, h):  # PIL's resize of an image to its own size is a copy: skip it
            arr = np.asarray(Image.fromarray(arr).resize(new, self.resample))
        left, top = int(round((new[0] - self.size) / 2.0)), int(round((new[1] - self.size) / 2.0))
        arr = np.ascontiguousarray(arr[top : top + self.size, left : left + self.size])
        if out is None:
            out = np.empty((len(self.luts), self.size, self.size), np.float32)
        for channel, lut in zip(out, self.luts):
            channel[...] = cv2.LUT(arr, lut)
        return out


def model_transform(data_config: dict, train: bool | str = False) -> T.Compose:
    """Resize/crop/normalise as the backbone's pretrained config says (timm); ``train=True`` (or
    ``"weak"``) adds a light augmentation, ``"strong"`` RandAugment and random erasing on top
    (FixMatch's strong view)."""
    size = data_config["input_size"][-1]
    if not train:
        return timm.data.create_transform(
            input_size=data_config["input_size"],
            interpolation=data_config["interpolation"],
            mean=data_config["mean"],
            std=data_config["std"],
            crop_pct=data_config["crop_pct"],
            crop_mode=data_config["crop_mode"],
        )
    interp = T.InterpolationMode(data_config["interpolation"])
    steps = [
        T.RandomResizedCrop(size, scale=(0.75, 1.0), ratio=(0.9, 1.1), interpolation=interp),
        T.RandomHorizontalFlip(),
        T.RandomRotation(10, interpolation=T.InterpolationMode.BILINEAR),
    ]
    if train == "strong":
        steps.append(T.RandAugment(num_ops=2, magnitude=9))
    steps += [T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])]
    if train == "strong":
        steps.append(T.RandomErasing(p=0.5, scale=(0.02, 0.15)))
    return T.Compose(steps)


class ImageTransform:
    """Path -> tensor: decode, MRI steps, greyscale handling, model transform. Picklable for workers."""

    def __init__(
        self, data_config: dict, mri: MRIPreprocess | None = None, train: bool | str = False, fast_decode: bool = True
    ):
        self.data_config = data_config
        self.mri = mri or MRIPreprocess()
        self.channels = data_config["input_size"][0]
        self.transform = model_transform(data_config, train=train)
        self.grey_eval = (
            GreyEvalTransform(data_config) if not train and data_config.get("crop_mode", "center") == "center" else None
        )
        size = data_config["input_size"][-1]
        self.work_size = int(size / data_config["crop_pct"])
        # JPEG draft mode: decode the luma channel only (half the decoding cost of RGB + convert,
        # the same pixels to +-2 grey levels on one pixel in millions), DCT-downscaled to no less
        # than twice the resize target. Twice, not once: DCT downscaling straight to the target
        # moved embeddings by 7 % (median, real 512 px slices) against an antialiased resize; at
        # twice the target the resize still does the last, antialiased step. The head crop needs
        # the full resolution of the box, so it gets luma only (scripts/bench_features.py)
        self.fast_decode = fast_decode
        self.draft_size = 2 * self.work_size if fast_decode and not self.mri.head_crop else None

    def load_array(self, path: str | Path) -> np.ndarray:
        """Decoded greyscale slice after the MRI steps, uint8 (H, W)."""
        if self.fast_decode:
            try:
                with Image.open(path) as img:
                    img.draft("L", (self.draft_size,) * 2 if self.draft_size else img.size)
                    img.load()
                    grey = np.asarray(img.convert("L"))
            except OSError:
                grey = np.asarray(load_image(path, "L"))  # raises the error that names the file
        else:
            grey = np.asarray(load_image(path, "L"))
        return self.mri.apply(grey, work_size=self.work_size)

    def load(self, path: str | Path) -> Image.Image:
        return Image.fromarray(self.load_array(path))

    def __call__(self, path: str | Path) -> torch.Tensor:
        if self.grey_eval is not None:
            return self.grey_eval(self.load_array(path))
        img = self.load(path)
        return self.transform(img.convert("RGB") if self.channels == 3 else img)
