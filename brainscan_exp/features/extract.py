"""Streaming feature extraction: workers decode, the model runs batched under inference_mode.

Memory is bounded by the batch, never by the dataset: batches are written to the store as they
come. On GPU it uses channels_last and bf16 autocast; on CPU it stays fp32 so embeddings are
reproducible.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from brainscan_exp.features.store import EmbeddingStore
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import ImageTransform, MRIPreprocess

log = logging.getLogger(__name__)


class PathDataset(Dataset):
    def __init__(self, paths: list[str], transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(self.paths[i])


class _BufferedWriter:
    """Collects streamed vectors and appends them to the store in parts of ``flush_every``."""

    def __init__(self, store: EmbeddingStore, hashes: list[str], flush_every: int):
        self.store, self.hashes, self.flush_every = store, hashes, flush_every
        self.pending: list[np.ndarray] = []
        self.start = 0

    def __call__(self, offset: int, vectors: np.ndarray) -> None:
        self.pending.append(vectors)
        if sum(map(len, self.pending)) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        block = np.concatenate(self.pending)
        self.store.append(self.hashes[self.start : self.start + len(block)], block)
        self.start += len(block)
        self.pending = []


def default_workers(device: torch.device) -> int:
    """Decoding (~3 ms/image with JPEG draft mode) is cheap next to the model: on a small CPU box
    the model's threads need every core, so images are decoded in the main process."""
    cores = os.cpu_count() or 2
    if device.type == "cpu":
        return 0 if cores <= 4 else min(4, cores // 4)
    return min(8, max(1, cores - 1))


@dataclass
class FeatureExtractor:
    """Configured by Hydra (``features`` group); ``run`` fills a store for a set of images."""

    cache_dir: str = "cache/features"
    batch_size: int = 32
    num_workers: int | None = None
    device: str = "auto"
    fast_decode: bool = True
    progress: bool = True
    flush_every: int = 1024  # vectors held before a store part is written: bounds memory
    export: bool = True  # the training task also writes features.parquet in its run folder

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def spec(self, backbone: Backbone, digest: str, mri: MRIPreprocess) -> dict:
        return {
            "backbone": backbone.name,
            "weights_digest": digest,
            "grey_mode": backbone.grey_mode,
            "out_indices": backbone.out_indices,
            "pooling": backbone.pooling,
            "tta": backbone.tta,
            "data_config": backbone.data_config,
            "mri": mri.as_dict(),
            "fast_decode": self.fast_decode,
        }

    def store_for(self, backbone: Backbone, model: torch.nn.Module, mri: MRIPreprocess) -> EmbeddingStore:
        return EmbeddingStore(self.cache_dir, self.spec(backbone, Backbone.digest(model), mri))

    def run(
        self, paths_by_hash: dict[str, str], backbone: Backbone, mri: MRIPreprocess, model=None
    ) -> tuple[EmbeddingStore, dict]:
        """Embed every image not yet in the store; returns the store and throughput stats."""
        model = model if model is not None else backbone.build()
        store = self.store_for(backbone, model, mri)
        todo = store.missing(list(paths_by_hash))
        stats = {"n_images": len(paths_by_hash), "n_computed": len(todo), "seconds": 0.0, "images_per_s": float("nan")}
        if not todo:
            log.info("features %s: all %d images cached", store.key, len(paths_by_hash))
            return store, stats
        transform = ImageTransform(backbone.data_config, mri, train=False, fast_decode=self.fast_decode)
        device = self.resolve_device()
        writer = _BufferedWriter(store, todo, self.flush_every)
        _, seconds = extract_embeddings(
            model,
            [paths_by_hash[h] for h in todo],
            transform,
            self.batch_size,
            default_workers(device) if self.num_workers is None else self.num_workers,
            device,
            progress=self.progress,
            sink=writer,
        )
        writer.flush()
        stats.update(seconds=seconds, images_per_s=len(todo) / seconds if seconds else float("nan"))
        log.info("features %s: %d images in %.1f s (%.1f img/s)", store.key, len(todo), seconds, stats["images_per_s"])
        return store, stats


COMPUTE_BATCH = 8  # fixed model batch: CPU kernels are chosen by batch shape, so a fixed shape
# (last chunk zero-padded) makes an image's embedding bitwise independent of loader batch size,
# worker count and position; 8 is also the fastest shape measured on 2 CPU cores. (The torch
# thread count is left alone: a different count may change the last bits.)


def _chunks(loader, size: int):
    """Re-cut the loader's stream into tensors of exactly ``size`` rows (the last one padded)."""
    rest = None
    for batch in loader:
        batch = batch if rest is None else torch.cat([rest, batch])
        n_full = len(batch) // size * size
        for chunk in torch.split(batch[:n_full], size):
            yield chunk, size
        rest = batch[n_full:] if n_full < len(batch) else None
    if rest is not None:
        pad = rest.new_zeros((size - len(rest), *rest.shape[1:]))
        yield torch.cat([rest, pad]), len(rest)


def extract_embeddings(
    model,
    paths,
    transform,
    batch_size=32,
    num_workers=1,
    device="cpu",
    progress=True,
    sink=None,
    compute_batch=COMPUTE_BATCH,
):
    """Stream ``paths`` through ``model``. With ``sink(offset, vectors)`` batches are handed over and
    nothing is kept (bounded memory); without it the vectors are returned stacked."""
    device = torch.device(device)
    loader = DataLoader(
        PathDataset(list(paths), transform),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
    )
    model = model.eval().to(device)
    use_amp = device.type == "cuda"
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    kept, offset = [], 0
    bar = tqdm(total=len(paths), unit="img", disable=not progress, desc="features")
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        for batch, n_real in _chunks(loader, compute_batch):
            batch = batch.to(device, non_blocking=True)
            if device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            out = model(batch)[:n_real].float().cpu().numpy()
            if sink is not None:
                sink(offset, out)
            else:
                kept.append(out)
            offset += len(out)
            bar.update(len(out))
    seconds = time.perf_counter() - start
    bar.close()
    return (np.concatenate(kept) if kept else None), seconds
