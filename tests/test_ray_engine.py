"""Ray extraction gives the local embedder's vectors, every hash once, in shards of <= batch_size."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # ~20 s per local Ray start on 2 cores

from brainscan_exp.features.ray_engine import extract_with_ray  # noqa: E402

# Ray's workers cannot import this test module by name: ship its classes by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class PixelStats:
    """Toy embedder: decoded pixels' mean, std, min, max and the image's height (order-sensitive)."""

    dim = 5

    def __call__(self, paths: list[str]) -> np.ndarray:
        rows = []
        for p in paths:
            a = np.asarray(Image.open(p).convert("L"), dtype=np.float32)
            rows.append([a.mean(), a.std(), a.min(), a.max(), a.shape[0]])
        return np.asarray(rows, dtype=np.float32)


class StatsEmbedder:
    """The features package's shape: an object with ``embed_batch``, from a factory with arguments."""

    def __init__(self, scale: float):
        self.scale = scale

    def embed_batch(self, paths: list[str]) -> np.ndarray:
        return PixelStats()(paths) * self.scale


class Failing(PixelStats):
    def __call__(self, paths):
        if any(p.endswith("_0007.jpg") for p in paths):
            raise OSError("cannot decode img_0007.jpg")
        return super().__call__(paths)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    items = []
    for i in range(23):
        arr = rng.integers(0, 256, size=(16 + i, 20), dtype=np.uint8)
        path = folder / f"img_{i:04d}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        items.append((f"hash{i:04d}", str(path)))
    return items


class Shards:
    def __init__(self):
        self.calls: list[tuple[list[str], np.ndarray]] = []

    def __call__(self, hashes, vectors):
        self.calls.append((list(hashes), vectors.copy()))


def test_ray_vectors_match_the_local_embedder_in_bounded_shards(images):
    assert not ray.is_initialized()
    shards = Shards()
    stats = extract_with_ray(images, PixelStats, shards, batch_size=5, num_actors=2)
    assert not ray.is_initialized(), "a Ray it started itself is shut down"

    got = [h for hashes, _ in shards.calls for h in hashes]
    assert sorted(got) == [h for h, _ in images]  # every hash exactly once
    assert all(len(h) == len(v) <= 5 for h, v in shards.calls)
    vectors = {h: v for hashes, block in shards.calls for h, v in zip(hashes, block)}
    local = PixelStats()([p for _, p in images])
    for (h, _), expected in zip(images, local):
        np.testing.assert_array_equal(vectors[h], expected)
    assert all(v.dtype == np.float32 for _, v in shards.calls)
    assert stats["n"] == 23 and stats["num_actors"] == 2 and stats["n_shards"] == len(shards.calls)
    assert stats["images_per_s"] > 0


@pytest.fixture
def running_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_an_existing_ray_is_reused_and_a_failing_batch_raises(images, running_ray):
    shards = Shards()
    assert extract_with_ray([], PixelStats, shards)["n"] == 0 and not shards.calls
    with pytest.raises(Exception, match="img_0007"):
        extract_with_ray(images, Failing, shards, batch_size=4, num_actors=1)
    assert ray.is_initialized(), "a Ray the caller started is left running"
    written = {h for hashes, _ in shards.calls for h in hashes}
    assert "hash0007" not in written
    # the resume: only what is missing runs again, now with a working embedder (an embed_batch one)
    rest = [(h, p) for h, p in images if h not in written]
    before = len(shards.calls)
    extract_with_ray(rest, functools.partial(StatsEmbedder, 2.0), shards, batch_size=4)
    assert sorted(h for hashes, _ in shards.calls for h in hashes) == [h for h, _ in images]
    paths = dict(images)
    for hashes, block in shards.calls[before:]:
        np.testing.assert_array_equal(block, PixelStats()([paths[h] for h in hashes]) * 2.0)


def _exported(cfg) -> dict[str, np.ndarray]:
    import pandas as pd

    from brainscan_exp.stages import features

    features.run(cfg)
    table = pd.read_parquet(f"{cfg.paths.output_dir}/features.parquet")
    return {h: np.asarray(v, np.float32) for h, v in zip(table.pixel_hash, table.vector)}


def test_features_task_on_ray_gives_the_local_vectors(train_cfg, tmp_path):
    """``task=features features.engine=ray``: a local Ray started and stopped by the stage, the
    default CPU runtime in each actor, and the local path's vectors within the runtime tolerance."""
    runtime = "features.runtime=auto"  # debug=fast picks torch: here the default CPU runtime
    local = _exported(train_cfg("task=features", runtime, f"features.cache_dir={tmp_path / 'local'}"))
    on_ray = _exported(
        train_cfg(
            "task=features",
            runtime,
            "features.engine=ray",
            "features.shard_size=16",
            f"features.cache_dir={tmp_path / 'ray'}",
        )
    )
    assert not ray.is_initialized(), "the stage's own Ray is shut down"
    assert on_ray.keys() == local.keys()
    rel = max(np.linalg.norm(on_ray[h] - local[h]) / np.linalg.norm(local[h]) for h in local)
    assert rel < 1e-4, rel
    shards = list((tmp_path / "ray").glob("*/shard-*.parquet"))
    assert len(shards) >= len(local) // 16  # one committed shard per Ray result batch


def test_pool_scores_on_ray_equal_the_local_chunks(tmp_path, running_ray):
    """``predict.engine=ray``: actors map the store's .npy (rows in any order) or share one
    object-store copy of an in-memory pool, and return the local pass's scores, every model's."""
    from sklearn.linear_model import LogisticRegression

    from brainscan_exp.core.ray_scores import PoolScorer
    from brainscan_exp.features.vectors import RowView

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 12)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    models = [LogisticRegression(C=c).fit(X[k::4], y[k::4]) for k, c in enumerate((0.1, 1.0, 10.0))]
    np.save(tmp_path / "pool.npy", X)
    lazy = RowView(np.load(tmp_path / "pool.npy", mmap_mode="r"), rng.permutation(1000))
    local = PoolScorer(chunk_size=100)
    on_ray = PoolScorer("ray", chunk_size=100, ray_actors=2, ray_rows_per_task=300)
    for pool in (lazy, X[::2]):
        mean, each = on_ray(pool, models)
        want_mean, want_each = local(pool, models)
        np.testing.assert_array_equal(each, want_each)
        np.testing.assert_allclose(mean, want_mean, rtol=1e-12)
    assert ray.is_initialized(), "a Ray the caller started is left running"
