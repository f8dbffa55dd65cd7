"""Feature extraction: threaded decoding feeding a fast inference runtime, committed per shard.

Memory is bounded by the shard (``shard_size`` vectors), never by the dataset, and a killed run
loses at most one shard: a rerun computes only what is missing. The runtime (torch, ONNX Runtime,
OpenVINO) and precision are part of the store key, since they change the last bits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from brainscan_exp.features import runtimes
from brainscan_exp.features.decode import BatchDecoder
from brainscan_exp.features.store import EmbeddingStore
from brainscan_exp.models.backbones import Backbone, fold_grey_stem, stem_foldable
from brainscan_exp.preprocessing import MRIPreprocess

log = logging.getLogger(__name__)


class Embedder:
    """Decode + preprocess (threaded) + runtime forward for a list of image paths."""

    def __init__(self, decoder: BatchDecoder, runtime, dim: int, batch: int, prefetch: int = 4):
        self.decoder, self.runtime, self.dim, self.batch, self.prefetch = decoder, runtime, dim, batch, prefetch

    def stream(self, paths: list[str]):
        """Vectors of ``paths`` in order, one fixed-size model batch at a time (padding dropped)."""
        paths, left = list(paths), len(paths)
        for out in self.runtime.infer(self.decoder.batches(paths, self.batch, self.prefetch)):
            n = min(left, len(out))
            left -= n
            yield np.asarray(out[:n], np.float32)

    def embed_batch(self, paths: list[str]) -> np.ndarray:
        """float32 (len(paths), dim), order preserved."""
        parts = list(self.stream(paths))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def close(self) -> None:
        self.decoder.close()


@dataclass
class FeatureExtractor:
    """Configured by Hydra (``features`` group); ``run`` fills a store for a set of images."""

    cache_dir: str = "cache/features"
    runtime: str = "auto"  # auto | torch | onnxruntime | openvino
    precision: str = "fp32"  # fp32 | bf16 (OpenVINO's inference precision, or torch autocast on GPU)
    device: str = "auto"
    batch_size: int = 32  # images decoded ahead of the model
    compute_batch: int | None = None  # images per forward (a fixed shape); None: runtimes.compute_batch
    fold_stem: bool = True  # a greyscale slice fed once to the stem summed over RGB (exact; backbones.py)
    shard_size: int = 256  # vectors per committed shard: bounds memory and what a kill loses
    decode_threads: int | None = None  # None: a third of the cores on CPU (at least 1), all on GPU
    fast_decode: bool = True
    progress: bool = True
    export: bool = True  # the training task also writes features.parquet in its run folder
    engine: str = "local"  # local: this process | ray: a Ray Data actor pool (features/ray_engine.py)
    ray_address: str | None = None  # None: a local Ray started and stopped here; "auto" / "ray://...": a cluster
    ray_actors: int | None = None  # None: as many as the cluster's CPUs (or GPUs) hold
    ray_cpus_per_actor: float = 1
    ray_gpus_per_actor: float = 0

    def __post_init__(self):
        if self.engine not in {"local", "ray"}:
            raise ValueError(f"features.engine must be local|ray, got {self.engine!r}")

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def resolve_runtime(self) -> str:
        runtime = runtimes.resolve(self.runtime, self.resolve_device())
        runtimes.check_precision(runtime, self.precision, self.resolve_device())
        return runtime

    def resolve_compute_batch(self) -> int:
        return self.compute_batch or runtimes.compute_batch(self.resolve_runtime(), self.resolve_device())

    def folds_stem(self, backbone: Backbone) -> bool:
        return self.fold_stem and backbone.grey_mode == "replicate" and stem_foldable(backbone.data_config)

    def spec(self, backbone: Backbone, digest: str, mri: MRIPreprocess) -> dict:
        return {
            **backbone.identity(digest),
            "data_config": backbone.data_config,
            "mri": mri.as_dict(),
            "fast_decode": self.fast_decode,
            "runtime": self.resolve_runtime(),
            "precision": self.precision,
            "compute_batch": self.resolve_compute_batch(),
            "stem": "folded" if self.folds_stem(backbone) else "as_built",
        }

    def store_for(self, backbone: Backbone, mri: MRIPreprocess, model=None) -> EmbeddingStore:
        model = model if model is not None else backbone.build()
        return EmbeddingStore(self.cache_dir, self.spec(backbone, Backbone.digest(model), mri))

    def embedder(self, backbone: Backbone, mri: MRIPreprocess, model=None) -> Embedder:
        """Everything needed to embed paths; builds (or reads from the cache) the runtime's model.
        Works in any process: it needs only these picklable arguments."""
        model = (model if model is not None else backbone.build()).eval()
        config = backbone.data_config
        if self.folds_stem(backbone):
            try:
                model, config = fold_grey_stem(model, config)
            except ValueError as exc:
                raise ValueError(f"{backbone.name}: {exc}; set features.fold_stem=false") from exc
        runtime, device = self.resolve_runtime(), self.resolve_device()
        cores, batch = runtimes.cpu_count(), self.resolve_compute_batch()
        threads = self.decode_threads or runtimes.decode_threads(device)
        decoder = BatchDecoder(config, mri, self.fast_decode, threads)
        shape = (batch, *config["input_size"])
        if runtime == "torch":
            engine = runtimes.TorchRuntime(model, device, self.precision)
        else:
            onnx = runtimes.exported_onnx(model, backbone, Backbone.digest(model), self.cache_dir, config["input_size"])
            if runtime == "onnxruntime":
                engine = runtimes.OnnxRuntime(onnx, cores)
            else:
                engine = runtimes.OpenVinoRuntime(onnx, shape, self.precision)
            rel = runtimes.agreement(model, engine, shape, onnx.parent, f"{runtime}-{self.precision}")
            if self.precision == "fp32" and rel > runtimes.AGREEMENT_TOL:
                raise RuntimeError(
                    f"features.runtime={runtime} disagrees with torch fp32 (max relative difference {rel:.1e} > "
                    f"{runtimes.AGREEMENT_TOL:g}) on {backbone.name}: set features.runtime=torch"
                )
        dim = getattr(model, "num_features", None)
        if dim is None:
            with torch.inference_mode():
                dim = model(torch.zeros((1, *shape[1:]))).shape[1]
        return Embedder(decoder, engine, int(dim), batch, prefetch=max(1, self.batch_size // batch))

    def run(
        self, paths_by_hash: dict[str, str], backbone: Backbone, mri: MRIPreprocess, model=None
    ) -> tuple[EmbeddingStore, dict]:
        """Embed every image not yet in the store, one committed shard at a time; returns the
        store and throughput stats."""
        model = model if model is not None else backbone.build()
        store = self.store_for(backbone, mri, model)
        todo = store.missing(list(paths_by_hash))
        runtime = self.resolve_runtime()
        stats = {
            "n_images": len(paths_by_hash),
            "n_computed": len(todo),
            "seconds": 0.0,
            "images_per_s": float("nan"),
            "runtime": runtime,
            "precision": self.precision,
        }
        if not todo:
            log.info("features %s: all %d images cached", store.key, len(paths_by_hash))
            return store, stats
        if self.engine == "ray":
            return store, stats | self._run_on_ray(todo, paths_by_hash, backbone, mri, model, store)
        embedder = self.embedder(backbone, mri, model)
        # a bar on a terminal only: in a log file its redraws would be one endless line
        bar = tqdm(total=len(todo), unit="img", disable=None if self.progress else True, desc=f"features ({runtime})")
        start = time.perf_counter()
        pending, done = [], 0
        try:
            for vectors in embedder.stream([paths_by_hash[h] for h in todo]):
                pending.append(vectors)
                bar.update(len(vectors))
                if sum(map(len, pending)) >= self.shard_size:
                    block = np.concatenate(pending)
                    store.write_shard(todo[done : done + len(block)], block)
                    done, pending = done + len(block), []
            if pending:
                block = np.concatenate(pending)
                store.write_shard(todo[done : done + len(block)], block)
        finally:
            embedder.close()
            bar.close()
        seconds = time.perf_counter() - start
        stats.update(seconds=seconds, images_per_s=len(todo) / seconds)
        log.info(
            "features %s: %d images in %.1f s (%.1f img/s, %s)",
            store.key,
            len(todo),
            seconds,
            len(todo) / seconds,
            runtime,
        )
        return store, stats

    def _run_on_ray(self, todo, paths_by_hash, backbone, mri, model, store) -> dict:
        """The same embedder in every actor of a Ray pool; each result batch is a committed shard."""
        from brainscan_exp.features.ray_engine import extract_with_ray

        ray_stats = extract_with_ray(
            [(h, paths_by_hash[h]) for h in todo],
            partial(self.embedder, backbone, mri, model),
            store.write_shard,
            batch_size=self.shard_size,
            num_actors=self.ray_actors,
            cpus_per_actor=self.ray_cpus_per_actor,
            gpus_per_actor=self.ray_gpus_per_actor,
            address=self.ray_address,
            progress=self.progress,
        )
        log.info("features %s: %d images on Ray (%.1f img/s)", store.key, len(todo), ray_stats["images_per_s"])
        return {
            "seconds": ray_stats["seconds"],
            "images_per_s": ray_stats["images_per_s"],
            "ray_actors": ray_stats["num_actors"],
        }
