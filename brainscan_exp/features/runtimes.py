"""Inference runtimes for the embedding model: torch eager, ONNX Runtime and OpenVINO.

Why several: on a small CPU box torch eager is the slowest way to run an EfficientNet (per-op
overhead, no layer fusion); ONNX Runtime and OpenVINO run the same exported graph several times
faster. Every runtime takes fixed-shape float32 batches (``compute_batch`` images, the last one
zero-padded): kernels are chosen by shape, so a fixed shape makes an image's embedding independent
of how callers cut their batches.

The ONNX file is exported once per (weights digest, feature levels, pooling, tta, input size) and
cached on disk; OpenVINO keeps its compiled blobs next to it (its ``CACHE_DIR``), and
``features.precision=int8`` its quantised model (``features/quantize.py``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from brainscan_exp.artefacts import atomic_write, content_key
from brainscan_exp.models.backbones import Backbone

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
ONNX_OPSET = 18
# PERFORMANCE_HINT: on 2 cores LATENCY (one stream on all cores) is faster end to end than
# THROUGHPUT (one stream per core): 239.7 vs 215.2 img/s, while the model alone ties (372.7 vs
# 380.5 img/s). scripts/bench_features.py measures both
OPENVINO_HINT = "LATENCY"
AGREEMENT_TOL = 1e-4  # max over images of ||a - b|| / ||b|| against torch fp32: a check of the fp32 export only
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_count() -> int:
    """The cores this process may use: its CPU affinity, or the thread budget a scheduler set
    (Ray gives each actor ``OMP_NUM_THREADS`` = its CPUs, as SLURM setups often do)."""
    budget = os.environ.get("OMP_NUM_THREADS", "")
    if budget.isdigit() and int(budget) > 0:
        return int(budget)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def decode_threads(device: torch.device) -> int:
    """Decoding threads by default: on CPU the model needs the cores; one thread decodes ~400
    img/s, more than a 2-core CPU embeds (one vs two threads end to end, two bench runs: 186 vs
    164 and 185 vs 195 img/s: noise-level). A GPU waits for decoding instead: all cores."""
    cores = cpu_count()
    return max(1, cores // 3) if device.type == "cpu" else cores


def compute_batch(runtime: str, device: torch.device) -> int:
    """Images per forward (a static shape). OpenVINO on CPU: 2, whose activations stay in cache
    (Lite0 level 3, ``compute_batch`` table of scripts/bench_features.py: model alone 385.8 img/s
    at 2 vs 362.3 at 8, end to end on the brief's images 276.5 vs 247.1). A GPU: 64. Else 8."""
    if device.type != "cpu":
        return 64
    return 2 if runtime == "openvino" else 8


def available(runtime: str) -> bool:
    if runtime == "torch":
        return True
    try:
        __import__(runtime)
    except ImportError:
        return False
    return True


def resolve(runtime: str, device: torch.device) -> str:
    """``auto``: torch on a GPU; on CPU OpenVINO (fastest, agrees with torch fp32 to ~1e-6), then
    ONNX Runtime, then torch, whichever is installed."""
    if runtime not in {"auto", *RUNTIMES}:
        raise ValueError(f"features.runtime must be auto|{'|'.join(RUNTIMES)}, got {runtime!r}")
    if runtime != "auto":
        if device.type != "cpu" and runtime != "torch":
            raise ValueError(f"features.runtime={runtime} runs on CPU only; use torch on {device}")
        return runtime
    if device.type != "cpu":
        return "torch"
    return next(r for r in ("openvino", "onnxruntime", "torch") if available(r))


def check_precision(runtime: str, precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"features.precision must be {'|'.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and not (runtime == "openvino" or (runtime == "torch" and device.type == "cuda")):
        raise ValueError("features.precision=bf16 needs runtime=openvino (CPU) or runtime=torch on a GPU")
    if precision == "int8" and runtime != "openvino":
        raise ValueError(
            f"features.precision=int8 is OpenVINO's NNCF-quantised model: set features.runtime=openvino (got {runtime})"
        )


def export_spec(backbone: Backbone, digest: str, input_size: tuple[int, ...]) -> dict:
    """What the exported graph depends on (preprocessing is not in the graph)."""
    return {
        **backbone.identity(digest),
        "input_size": list(input_size),
        "opset": ONNX_OPSET,
        "torch": torch.__version__,
    }


def exported_onnx(
    model: torch.nn.Module, backbone: Backbone, digest: str, cache_dir: str | Path, input_size: tuple[int, ...]
) -> Path:
    """The model as ONNX (dynamic batch), exported on first use and then read from the cache."""
    spec = export_spec(backbone, digest, input_size)
    folder = Path(cache_dir) / "models" / content_key(spec, "brainscan_exp.features.runtimes")
    path = folder / "model.onnx"
    if path.exists():
        return path
    start = time.perf_counter()
    example = torch.zeros((2, *input_size))
    model = model.eval().cpu()

    def write(tmp: Path) -> None:
        with torch.inference_mode():
            # the TorchScript exporter: 4x faster than dynamo=True here, and the same graph
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["image"],
                output_names=["embedding"],
                dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
            )

    atomic_write(path, write)
    atomic_write(folder / "spec.json", lambda tmp: tmp.write_text(json.dumps(spec, indent=2)))
    log.info("exported %s to %s in %.1f s", backbone.name, path, time.perf_counter() - start)
    return path


def agreement(model: torch.nn.Module, engine, batch_shape: tuple[int, ...], folder: Path, name: str) -> float:
    """Max relative difference of ``engine`` against torch fp32 on a fixed random batch, measured
    once per export and runtime (cached in ``folder``): a runtime that disagrees is caught before
    it fills a store."""
    path = Path(folder) / f"agreement-{name}.json"
    if path.exists():
        return json.loads(path.read_text())["max_rel_diff"]
    batch = np.random.default_rng(0).standard_normal(batch_shape).astype(np.float32)
    with torch.inference_mode():
        ref = model.eval().cpu()(torch.from_numpy(batch)).numpy()
    (out,) = engine.infer([batch])
    rel = float((np.linalg.norm(out - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)).max())
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps({"max_rel_diff": rel})))
    return rel


class TorchRuntime:
    """Eager torch: fp32 on CPU; on GPU channels_last, with bf16 autocast if asked."""

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32"):
        self.device, self.amp = device, precision == "bf16"
        self.model = model.eval().to(device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)

    def infer(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            for batch in batches:
                x = torch.from_numpy(batch).to(self.device, non_blocking=True)
                if self.device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                yield self.model(x).float().cpu().numpy()


class OnnxRuntime:
    """ONNX Runtime's CPU provider, one intra-op thread per core, no spinning."""

    def __init__(self, onnx_path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_count()
        # no busy-waiting between ops: the spinning threads starved the decoding thread (+15 % end
        # to end on 2 cores with spinning off)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def infer(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for batch in batches:
            yield self.session.run(None, {"image": batch})[0]


class OpenVinoRuntime:
    """OpenVINO on CPU, static batch shape, ``OPENVINO_HINT``; as many requests in flight as the
    hint's streams, run asynchronously so the caller's decoding overlaps inference.

    ``model_path``: the ONNX export, or for int8 the quantised OpenVINO IR (``model.xml``), whose
    quantised layers run in int8 and the others in f32."""

    def __init__(
        self, model_path: Path, batch_shape: tuple[int, ...], precision: str = "fp32", hint: str | None = None
    ):
        import openvino as ov

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(Path(model_path).parent / "openvino")})
        model = core.read_model(str(model_path))
        model.reshape({model.inputs[0]: list(batch_shape)})
        config = {
            "PERFORMANCE_HINT": hint or OPENVINO_HINT,
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "INFERENCE_NUM_THREADS": cpu_count(),
        }
        self.compiled = core.compile_model(model, "CPU", config)
        self.n_requests = self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")

    def infer(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        # round-robin over plain requests, no Python callback: a callback needs the GIL from an
        # OpenVINO thread while the caller may hold it waiting for an idle request (a deadlock)
        free = deque(self.compiled.create_infer_request() for _ in range(self.n_requests))
        in_flight: deque = deque()
        for batch in batches:
            if not free:
                yield self._collect(in_flight, free)
            request = free.popleft()
            request.start_async({0: batch})  # the input is copied
            in_flight.append(request)
        while in_flight:
            yield self._collect(in_flight, free)

    @staticmethod
    def _collect(in_flight: deque, free: deque) -> np.ndarray:
        request = in_flight.popleft()
        request.wait()
        free.append(request)
        return request.get_output_tensor(0).data.copy()


def runtime_info(runtime: str, precision: str) -> dict:
    """What an embedding's speed and exact values depend on: runtime, its version, precision, CPU."""
    version = {"torch": torch.__version__}.get(runtime)
    if version is None:
        version = getattr(__import__(runtime), "__version__", None) if available(runtime) else None
    if runtime == "openvino" and available("openvino"):
        import openvino as ov

        version = ov.get_version()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {
        "runtime": runtime,
        "version": version,
        "precision": precision,
        "cpu": platform.processor() or platform.machine(),
        "cores": cpu_count(),
        "cpu_flags": ",".join(f for f in CPU_FLAGS if f in flags) or "unknown",
    }
