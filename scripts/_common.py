"""Helpers shared by the scripts in ``scripts/`` (not part of the package).

- ``PROJECT_ROOT`` and ``RESULTS_DIR`` (``scripts/results``);
- ``env_info()``: what a benchmark number depends on (versions, threads, cores, date);
- ``write_json()``: atomic JSON write (NaN/inf become null, numpy scalars become numbers);
- ``peak_rss_mb()``: peak resident memory of this process and of its reaped children;
- ``ensure_bench_images()``: a cached, deterministic folder of generated 512x512 brain-slice JPEGs
  in which image ``i`` depends only on ``(seed, i)``, so a set of N images is always the prefix of
  a larger set.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / "scripts" / "results"

if str(PROJECT_ROOT) not in sys.path:  # run from anywhere without an installed package
    sys.path.insert(0, str(PROJECT_ROOT))


def env_info() -> dict:
    import cv2
    import numpy as np
    import PIL
    import timm
    import torch
    from PIL import features as pil_features

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "opencv": cv2.__version__,
        "libjpeg_turbo": bool(pil_features.check_feature("libjpeg_turbo")),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        "cuda_available": torch.cuda.is_available(),
    }


def _clean(obj):
    """JSON-safe copy: NaN/inf -> None, numpy scalars/arrays -> Python, Paths -> str."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalar or array
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(data: dict, path: str | Path) -> Path:
    from brainscan_exp.artefacts import atomic_write

    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(_clean(data), indent=2) + "\n"))


def peak_rss_mb() -> dict:
    """Peak RSS (MiB) of this process, and the largest of its terminated, waited-for children
    (DataLoader workers once joined). Linux reports ``ru_maxrss`` in KiB, macOS in bytes."""
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
    return {
        "main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
        "children_max": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale,
    }


# ---------------------------------------------------------------------------------------------
# generated benchmark images

BENCH_IMAGE_SIZE = 512
BENCH_JPEG_QUALITY = 95


def default_image_dir(seed: int = 0) -> Path:
    return (
        Path(tempfile.gettempdir()) / "brainscan_bench_images" / f"s{BENCH_IMAGE_SIZE}_q{BENCH_JPEG_QUALITY}_seed{seed}"
    )


def _image_name(i: int) -> str:
    return f"img_{i:06d}.jpg"


def _make_image(job: tuple[str, int, int]) -> tuple[int, str]:
    """Generate, save and hash image ``i`` (a function of (seed, i) only). Runs in a worker."""
    import numpy as np
    from PIL import Image

    from brainscan_exp.data.demo import brain_slice
    from brainscan_exp.data.images import load_image, pixel_hash

    folder, seed, i = job
    rng = np.random.default_rng([seed, i])
    arr = brain_slice(rng, BENCH_IMAGE_SIZE, lesion=bool(i % 2), contrast=float(rng.uniform(0.8, 1.2)))
    path = Path(folder) / _image_name(i)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).convert("RGB").save(tmp, format="JPEG", quality=BENCH_JPEG_QUALITY)
    os.replace(tmp, path)
    return i, pixel_hash(load_image(path, "RGB"))  # the same hash the catalogue would give it


def ensure_bench_images(
    n: int, folder: str | Path | None = None, seed: int = 0, workers: int | None = None, log=print
) -> dict[str, str]:
    """First ``n`` generated images as ``{pixel_hash: path}`` (insertion order = index order).

    Images already in ``folder`` (listed in its ``manifest.tsv``) are reused; only missing indices
    are generated, in ``workers`` processes. Fails if two images share a pixel hash.
    """
    from multiprocessing import get_context

    folder = Path(folder) if folder is not None else default_image_dir(seed)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.tsv"
    known: dict[int, str] = {}
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            idx, digest = line.split("\t")
            if (folder / _image_name(int(idx))).exists():
                known[int(idx)] = digest
    todo = [i for i in range(n) if i not in known]
    if todo:
        workers = workers or os.cpu_count() or 1
        log(
            f"generating {len(todo)} images of {BENCH_IMAGE_SIZE}x{BENCH_IMAGE_SIZE} into {folder} ({workers} processes) ..."
        )
        start = time.perf_counter()
        jobs = [(str(folder), seed, i) for i in todo]
        with open(manifest, "a") as out:
            if workers > 1:
                with get_context("spawn").Pool(workers) as pool:
                    for i, digest in pool.imap_unordered(_make_image, jobs, chunksize=16):
                        known[i] = digest
                        out.write(f"{i}\t{digest}\n")
            else:
                for job in jobs:
                    i, digest = _make_image(job)
                    known[i] = digest
                    out.write(f"{i}\t{digest}\n")
        log(f"generated {len(todo)} images in {time.perf_counter() - start:.1f} s")
    paths = {known[i]: str(folder / _image_name(i)) for i in range(n)}
    if len(paths) != n:
        raise RuntimeError(
            f"{folder}: only {len(paths)} distinct pixel hashes among {n} images; delete the folder and rerun"
        )
    return paths
