"""Feature extraction spread over a Ray cluster (or the local cores) with Ray Data.

Rows are ``(pixel_hash, path)`` pairs built with ``ray.data.from_items``, not ``read_images``:
decoding inside ``map_batches`` is faster than Ray's image reader (ray#37499) and listing ~10^8
files through ``read_images`` spends hours resolving paths (ray#40686). A fixed pool of actors
(one embedder each, built once: model weights are loaded once per actor, not per batch) embeds
the batches; the driver writes each result batch as a store shard as soon as it arrives, so
memory stays bounded by a few batches and an interrupted run resumes at shard granularity.

This module knows nothing about backbones or stores: it takes a picklable factory of
``embed(paths) -> (n, dim) float32`` (or of an object with that ``embed_batch`` method, e.g.
``functools.partial(extractor.embedder, backbone, mri, model)``) and a
``write_shard(hashes, vectors)`` callback (``EmbeddingStore.write_shard``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]


class _EmbedActor:
    """Ray Data callable class: one per actor, so ``make_embedder()`` (model load) runs once."""

    def __init__(self, make_embedder: Callable[[], Embed]):
        built = make_embedder()
        # an ``Embedder`` (``embed_batch``) or a plain ``paths -> vectors`` callable
        self.embed = getattr(built, "embed_batch", built)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        vectors = np.asarray(self.embed(paths), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(paths):
            raise ValueError(f"embedder returned shape {vectors.shape} for {len(paths)} paths; expected (n, dim)")
        return {"hash": np.asarray(batch["hash"]), "vector": vectors}


def _quiet_ray_data(progress: bool) -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.enable_operator_progress_bars = progress
    ctx.print_on_execution_start = progress
    ctx.enable_auto_log_stats = False
    if not progress:
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # incl. "progress bars disabled"


def _connect(address: str | None, progress: bool) -> bool:
    """Connect to ``address`` or start a local instance; True when this call started Ray
    (and so must shut it down). An existing connection is reused and left alone."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": progress, "ignore_reinit_error": True}
    if not progress:
        quiet["logging_level"] = logging.ERROR
        logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up notices are not the job's events
    if address is not None:  # "auto" (a node of the cluster) or "ray://head:10001" (Ray Client)
        ray.init(address=address, **{k: v for k, v in quiet.items() if k != "include_dashboard"})
        return False  # someone else's cluster: never shut it down
    ray.init(num_cpus=os.cpu_count() or 1, **quiet)
    return True


def default_actors(cpus_per_actor: float, gpus_per_actor: float) -> int:
    """As many actors as the cluster's GPUs (GPU actors) or CPUs (CPU actors) can hold at once."""
    import ray

    resources = ray.cluster_resources()
    if gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) // gpus_per_actor))
    return max(1, int(resources.get("CPU", 1) // max(cpus_per_actor, 1e-9)))


def extract_with_ray(
    items: list[tuple[str, str]],
    make_embedder: Callable[[], Embed],
    write_shard: Callable[[list[str], np.ndarray], Any],
    *,
    batch_size: int = 256,
    num_actors: int | None = None,
    cpus_per_actor: float = 1,
    gpus_per_actor: float = 0,
    address: str | None = None,
    progress: bool = False,
) -> dict:
    """Embed ``items`` (``(pixel_hash, path)`` still missing from the store) on a Ray actor pool.

    ``write_shard(hashes, vectors)`` runs on the driver once per result batch of at most
    ``batch_size`` rows, in arrival order (not input order). ``num_actors=None`` fills the
    cluster. With ``address=None`` a local Ray is started (and stopped) unless one is already
    initialised; with ``address`` (``"auto"``, ``"ray://..."``) the cluster is joined, never stopped.
    Returns ``n``, ``seconds``, ``images_per_s``, ``num_actors``, ``n_shards``.
    """
    import ray
    import ray.data

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stats = {"n": len(items), "seconds": 0.0, "images_per_s": float("nan"), "num_actors": 0, "n_shards": 0}
    if not items:
        return stats
    started = _connect(address, progress)
    try:
        _quiet_ray_data(progress)
        actors = num_actors or default_actors(cpus_per_actor, gpus_per_actor)
        start = time.perf_counter()
        # about one block per batch: blocks reach the actors evenly and none holds the whole list
        ds = ray.data.from_items(
            [{"hash": h, "path": p} for h, p in items],
            override_num_blocks=max(1, min(math.ceil(len(items) / batch_size), 100_000)),
        )
        ds = ds.map_batches(
            _EmbedActor,
            fn_constructor_args=(make_embedder,),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),  # a fixed-size pool (Ray >= 2.51: not concurrency=)
            num_cpus=cpus_per_actor,
            num_gpus=gpus_per_actor,
        )
        n_done = n_shards = 0
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=2):
            hashes = [str(h) for h in batch["hash"]]
            write_shard(hashes, np.ascontiguousarray(batch["vector"], dtype=np.float32))
            n_done += len(hashes)
            n_shards += 1
        seconds = time.perf_counter() - start
        if n_done != len(items):  # Ray Data drops nothing silently by default; guard the contract
            raise RuntimeError(f"ray extraction returned {n_done} vectors for {len(items)} images")
        stats.update(
            seconds=seconds,
            images_per_s=n_done / seconds if seconds else float("nan"),
            num_actors=actors,
            n_shards=n_shards,
        )
        log.info(
            "ray extraction: %d images in %.1f s on %d actors (%.1f img/s)",
            n_done,
            seconds,
            actors,
            stats["images_per_s"],
        )
        return stats
    finally:
        if started:
            ray.shutdown()
