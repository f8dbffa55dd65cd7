"""Feature extraction: threaded decoding feeding a fast inference runtime, committed per shard.

Memory is bounded by the shard (``shard_size`` vectors), never by the dataset, and a killed run
loses at most one shard: a rerun computes only what is missing. The runtime (torch, ONNX Runtime,
OpenVINO) and precision are part of the store key, since they change the last bits; for int8 so is
the calibration sample (a seeded sample of the images being embedded, ``features/quantize.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from brainscan_exp.artefacts import content_key
from brainscan_exp.features import quantize, runtimes
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
    precision: str = "fp32"  # fp32 | bf16 (OpenVINO's inference precision, or torch autocast on GPU) | int8 (NNCF)
    calibration_size: int = quantize.CALIBRATION_SIZE  # int8: images of the calibration sample
    calibration_seed: int = 0  # int8: the sample's seed
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

    def calibration_for(self, paths_by_hash: dict[str, str] | None) -> dict[str, str] | None:
        """int8: the seeded calibration sample of the images being embedded (hash -> path); other
        precisions: None."""
        if self.precision != "int8":
            return None
        if not paths_by_hash:
            raise ValueError(
                "features.precision=int8 is calibrated on the images being embedded: pass their "
                "{pixel hash: path} (paths_by_hash) to FeatureExtractor.store_for / embedder"
            )
        sample = quantize.calibration_sample(paths_by_hash, self.calibration_size, self.calibration_seed)
        return {h: paths_by_hash[h] for h in sample}

    def spec(self, backbone: Backbone, digest: str, mri: MRIPreprocess, calibration: dict | None = None) -> dict:
        spec = {
            **backbone.identity(digest),
            "data_config": backbone.data_config,
            "mri": mri.as_dict(),
            "fast_decode": self.fast_decode,
            "runtime": self.resolve_runtime(),
            "precision": self.precision,
            "compute_batch": self.resolve_compute_batch(),
            "stem": "folded" if self.folds_stem(backbone) else "as_built",
        }
        if self.precision == "int8":  # the quantised model depends on its calibration images
            if calibration is None:
                self.calibration_for(None)  # raises, naming the fix
            spec["calibration"] = content_key({"hashes": sorted(calibration)})
            spec["quantizer"] = quantize.quantizer_key()
        return spec

    def store_for(
        self, backbone: Backbone, mri: MRIPreprocess, model=None, paths_by_hash: dict[str, str] | None = None
    ) -> EmbeddingStore:
        """The store of these settings; int8 needs ``paths_by_hash`` (its calibration sample)."""
        model = model if model is not None else backbone.build()
        calibration = self.calibration_for(paths_by_hash)
        return EmbeddingStore(self.cache_dir, self.spec(backbone, Backbone.digest(model), mri, calibration))

    def _folded(self, backbone: Backbone, model) -> tuple[torch.nn.Module, dict]:
        """The model as the runtime runs it (greyscale stem folded where exact) and its data config."""
        model, config = model.eval(), backbone.data_config
        if self.folds_stem(backbone):
            try:
                model, config = fold_grey_stem(model, config)
            except ValueError as exc:
                raise ValueError(f"{backbone.name}: {exc}; set features.fold_stem=false") from exc
        return model, config

    def model_file(
        self, backbone: Backbone, mri: MRIPreprocess, model=None, calibration: dict[str, str] | None = None
    ) -> Path:
        """The file the CPU runtime reads: the ONNX export, or for int8 its quantised IR (built once
        from ``calibration``, decoded exactly as extraction decodes)."""
        folded, config = self._folded(backbone, model if model is not None else backbone.build())
        return self._model_file(backbone, folded, config, mri, calibration)

    def _model_file(self, backbone, folded, config, mri, calibration) -> Path:
        onnx = runtimes.exported_onnx(folded, backbone, Backbone.digest(folded), self.cache_dir, config["input_size"])
        if self.precision != "int8":
            return onnx
        if not calibration:
            self.calibration_for(None)  # raises, naming the fix
        decoder = BatchDecoder(config, mri, self.fast_decode, self.decode_threads or runtimes.cpu_count())
        paths, batch = list(calibration.values()), self.resolve_compute_batch()
        preprocessing = {"data_config": config, "mri": mri.as_dict(), "fast_decode": self.fast_decode}

        def batches():  # full-size rows only: no zero padding in the activation statistics
            return [decoder.decode(paths[i : i + batch]) for i in range(0, len(paths), batch)]

        try:
            spec = quantize.quantize_spec(onnx.parent.name, preprocessing, list(calibration))
            return quantize.quantized_model(onnx, spec, batches)
        finally:
            decoder.close()

    def embedder(
        self, backbone: Backbone, mri: MRIPreprocess, model=None, calibration: dict[str, str] | None = None
    ) -> Embedder:
        """Everything needed to embed paths; builds (or reads from the cache) the runtime's model
        (int8: quantised on ``calibration``, :meth:`calibration_for`). Works in any process: it
        needs only these picklable arguments."""
        folded, config = self._folded(backbone, model if model is not None else backbone.build())
        runtime, device = self.resolve_runtime(), self.resolve_device()
        cores, batch = runtimes.cpu_count(), self.resolve_compute_batch()
        threads = self.decode_threads or runtimes.decode_threads(device)
        shape = (batch, *config["input_size"])
        if runtime == "torch":
            engine = runtimes.TorchRuntime(folded, device, self.precision)
        else:
            path = self._model_file(backbone, folded, config, mri, calibration)
            if runtime == "onnxruntime":
                engine = runtimes.OnnxRuntime(path, cores)
            else:
                engine = runtimes.OpenVinoRuntime(path, shape, self.precision)
            # the onnx folder holds one agreement file per runtime and precision (int8: per quantised model)
            if self.precision == "int8":  # beside the export, one per quantised model (int8-<key>)
                folder, name = path.parent.parent, f"{runtime}-{path.parent.name}"
            else:
                folder, name = path.parent, f"{runtime}-{self.precision}"
            rel = runtimes.agreement(folded, engine, shape, folder, name)
            # fp32: a check of the export; lower precisions are judged by the task metric
            # (experiment=generalization's precision choice), their distance is only logged
            if self.precision == "fp32" and rel > runtimes.AGREEMENT_TOL:
                raise RuntimeError(
                    f"features.runtime={runtime} disagrees with torch fp32 (max relative difference {rel:.1e} > "
                    f"{runtimes.AGREEMENT_TOL:g}) on {backbone.name}: set features.runtime=torch"
                )
            if self.precision != "fp32":
                log.info("%s %s: max relative difference %.1e against torch fp32", runtime, self.precision, rel)
        decoder = BatchDecoder(config, mri, self.fast_decode, threads)
        dim = getattr(folded, "num_features", None)
        if dim is None:
            with torch.inference_mode():
                dim = folded(torch.zeros((1, *shape[1:]))).shape[1]
        return Embedder(decoder, engine, int(dim), batch, prefetch=max(1, self.batch_size // batch))

    def run(
        self, paths_by_hash: dict[str, str], backbone: Backbone, mri: MRIPreprocess, model=None
    ) -> tuple[EmbeddingStore, dict]:
        """Embed every image not yet in the store, one committed shard at a time; returns the
        store and throughput stats."""
        model = model if model is not None else backbone.build()
        calibration = self.calibration_for(paths_by_hash)
        store = EmbeddingStore(self.cache_dir, self.spec(backbone, Backbone.digest(model), mri, calibration))
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
            return store, stats | self._run_on_ray(todo, paths_by_hash, backbone, mri, model, store, calibration)
        embedder = self.embedder(backbone, mri, model, calibration)
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

    def _run_on_ray(self, todo, paths_by_hash, backbone, mri, model, store, calibration=None) -> dict:
        """The same embedder in every actor of a Ray pool; each result batch is a committed shard."""
        from brainscan_exp.features.ray_engine import extract_with_ray

        if self.resolve_runtime() != "torch":  # exported (and quantised) once here: the actors read the cache
            self.model_file(backbone, mri, model, calibration)
        ray_stats = extract_with_ray(
            [(h, paths_by_hash[h]) for h in todo],
            partial(self.embedder, backbone, mri, model, calibration),
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
