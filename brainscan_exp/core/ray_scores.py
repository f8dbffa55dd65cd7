"""Pool scoring on a Ray actor pool (``predict.engine=ray``): the chunks of
:func:`~brainscan_exp.core.stream.model_scores`, spread over a cluster's cores.

Why actors: the inner models are shipped once per actor (through the object store), not once per
chunk. Each actor reads its chunks itself: from the store's ``.npy`` memmap when the pool is one
(the file must sit on storage every node reads, like the images for ``features.engine=ray``),
else from one copy of the pool in the object store. The driver only holds the scores, 4 bytes
per image and model, so a 4 M pool needs no more memory on the driver than on one machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from brainscan_exp.core.stream import model_scores

log = logging.getLogger(__name__)

__all__ = ["PoolScorer", "ray_model_scores"]


def _memmap_source(pool) -> tuple[str, np.ndarray] | None:
    """``(npy file, rows)`` when ``pool`` reads a ``.npy`` memmap (directly, or as a
    :class:`~brainscan_exp.features.vectors.RowView` of it)."""
    matrix = getattr(pool, "matrix", pool)
    rows = getattr(pool, "rows", None)
    filename = getattr(matrix, "filename", None)
    if not isinstance(matrix, np.memmap) or not filename or not str(filename).endswith(".npy"):
        return None
    return str(filename), (np.arange(len(matrix), dtype=np.int64) if rows is None else np.asarray(rows, np.int64))


class _ScoreActor:
    """Holds the models and the pool's source; scores the slices of the pool it is sent."""

    def __init__(self, models, kind: str, data, rows: np.ndarray | None, chunk_size: int):
        from brainscan_exp.features.vectors import RowView

        matrix = np.load(data, mmap_mode="r") if kind == "npy" else data  # (object refs arrive resolved)
        self.pool = matrix if rows is None else RowView(matrix, rows)
        self.models, self.chunk_size = models, chunk_size

    def score(self, start: int, stop: int) -> tuple[int, np.ndarray, np.ndarray]:
        rows = np.arange(start, stop, dtype=np.int64)
        mean, each = model_scores(self.pool, self.models, rows=rows, chunk_size=self.chunk_size)
        return start, mean, each


def ray_model_scores(
    pool,
    models: Sequence,
    *,
    chunk_size: int = 32_768,
    rows_per_task: int = 262_144,
    num_actors: int | None = None,
    cpus_per_actor: float = 1,
    address: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~brainscan_exp.core.stream.model_scores` of ``pool`` with ``models``, its rows
    split into tasks of ``rows_per_task`` over a pool of ``num_actors`` Ray actors (None: the
    cluster's CPUs / ``cpus_per_actor``). ``address`` None starts (and stops) a local Ray unless
    one is running; ``"auto"`` or ``"ray://..."`` joins a cluster."""
    import ray
    from ray.util import ActorPool

    from brainscan_exp.features.ray_engine import _connect, default_actors

    if not models:
        raise ValueError("scoring a pool needs at least one fitted model")
    n = len(pool)
    if n == 0:
        return np.zeros(0), np.zeros((len(models), 0), np.float32)
    started = _connect(address, progress=False)
    try:
        t0 = time.perf_counter()
        memmap = _memmap_source(pool)
        if memmap is not None:  # each actor maps the store's file itself
            kind, data, rows = "npy", memmap[0], ray.put(memmap[1])
        else:  # an in-memory pool: one copy in the object store, shared by the actors
            kind, data, rows = "array", ray.put(np.asarray(pool, dtype=np.float32)), None
        actors = num_actors or default_actors(cpus_per_actor, 0)
        remote = ray.remote(num_cpus=cpus_per_actor)(_ScoreActor)
        models_ref = ray.put(list(models))
        workers = ActorPool([remote.remote(models_ref, kind, data, rows, chunk_size) for _ in range(actors)])
        mean = np.empty(n, dtype=np.float64)
        each = np.empty((len(models), n), dtype=np.float32)
        tasks = [(s, min(n, s + rows_per_task)) for s in range(0, n, rows_per_task)]
        for start, m, e in workers.map_unordered(lambda a, t: a.score.remote(*t), tasks):
            mean[start : start + len(m)], each[:, start : start + len(m)] = m, e
        log.info("ray pool scoring: %d images in %.1f s on %d actors", n, time.perf_counter() - t0, actors)
        return mean, each
    finally:
        if started:
            ray.shutdown()


class PoolScorer:
    """``predict.engine``: how the fitted inner models score the pool, ``(mean, every model's)``.

    ``local``: this process, chunk by chunk (:func:`~brainscan_exp.core.stream.model_scores`);
    ``ray``: a Ray actor pool (:func:`ray_model_scores`), for a cluster."""

    def __init__(
        self,
        engine: str = "local",
        chunk_size: int = 32_768,
        ray_address: str | None = None,
        ray_actors: int | None = None,
        ray_cpus_per_actor: float = 1,
        ray_rows_per_task: int = 262_144,
    ):
        if engine not in ("local", "ray"):
            raise ValueError(f"predict.engine must be local or ray, got {engine!r}")
        self.engine, self.chunk_size = engine, chunk_size
        self.ray_address, self.ray_actors = ray_address, ray_actors
        self.ray_cpus_per_actor, self.ray_rows_per_task = ray_cpus_per_actor, ray_rows_per_task

    def __call__(self, pool, models: Sequence) -> tuple[np.ndarray, np.ndarray]:
        if self.engine == "local":
            return model_scores(pool, models, chunk_size=self.chunk_size)
        return ray_model_scores(
            pool,
            models,
            chunk_size=self.chunk_size,
            rows_per_task=self.ray_rows_per_task,
            num_actors=self.ray_actors,
            cpus_per_actor=self.ray_cpus_per_actor,
            address=self.ray_address,
        )
