"""``features.precision=int8``: NNCF post-training quantisation of the exported embedding model.

Why calibrate on the run's own images: NNCF sets each quantiser's range from the activations it
sees, and slices after the MRI steps (head crop, percentile intensity, CLAHE) look nothing like
ImageNet. The calibration set is a seeded sample of the images being embedded (labelled + pool),
decoded by the extraction's own ``BatchDecoder``, so the model is quantised on exactly what it
will be fed.

Why cached: quantisation runs the model over the whole sample (about a minute on 2 cores); the
quantised OpenVINO IR is written once under a content key (export, preprocessing, calibration
sample, NNCF and OpenVINO versions, this module's code) next to the ONNX export, and read after.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from brainscan_exp.artefacts import content_key

log = logging.getLogger(__name__)

CALIBRATION_SIZE = 300  # NNCF's default subset size


def calibration_sample(hashes: Iterable[str], size: int = CALIBRATION_SIZE, seed: int = 0) -> list[str]:
    """A seeded sample of ``size`` distinct hashes (all of them when fewer), sorted: the same set
    whatever the order the caller lists its images in."""
    pool = np.array(sorted(set(hashes)))
    if len(pool) <= size:
        return pool.tolist()
    pick = np.random.default_rng(seed).choice(len(pool), size=size, replace=False)
    return sorted(pool[pick].tolist())


def quantizer_key() -> str:
    """What changes any INT8 model besides its inputs: NNCF and OpenVINO versions, this code."""
    import nncf
    import openvino as ov

    return content_key({"nncf": nncf.__version__, "openvino": ov.get_version()}, "brainscan_exp.features.quantize")


def quantize_spec(export_key: str, preprocessing: dict, sample: list[str]) -> dict:
    """What the quantised model depends on, besides this module's code."""
    import nncf
    import openvino as ov

    return {
        "export": export_key,
        "preprocessing": preprocessing,
        "calibration": content_key({"hashes": sorted(sample)}),
        "n_calibration": len(sample),
        "nncf": nncf.__version__,
        "openvino": ov.get_version(),
    }


def quantized_model(onnx_path: str | Path, spec: dict, batches: Callable[[], Iterable[np.ndarray]]) -> Path:
    """The INT8 OpenVINO IR of ``onnx_path`` calibrated on ``batches()`` (float32 model inputs),
    built on first use under ``spec``'s content key and then read from the cache."""
    folder = Path(onnx_path).parent / f"int8-{content_key(spec, 'brainscan_exp.features.quantize')}"
    path = folder / "model.xml"
    if path.exists():
        return path
    import nncf
    import openvino as ov

    start = time.perf_counter()
    items = list(batches())
    if not items:
        raise ValueError(f"no calibration images for the INT8 model of {onnx_path}: embed at least one image")
    model = ov.Core().read_model(str(onnx_path))
    quantized = nncf.quantize(
        model,
        nncf.Dataset(items),
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(items),  # every calibration batch
    )
    # written in a temporary folder, then renamed into place: readers never see half an IR
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        ov.save_model(quantized, str(tmp / "model.xml"), compress_to_fp16=False)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process wrote it first: theirs is the same model
            if not path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "quantised %s to INT8 on %d calibration images in %.1f s: %s",
        Path(onnx_path).name,
        sum(len(b) for b in items),
        time.perf_counter() - start,
        path,
    )
    return path
