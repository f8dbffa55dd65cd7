"""The features stage: runtimes agree, exports are cached, the sharded store resumes after a kill
and takes concurrent writers, embeddings do not depend on batching, preprocessing is exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from brainscan_exp.data.demo import brain_slice
from brainscan_exp.features import EmbeddingStore, FeatureExtractor
from brainscan_exp.features.decode import BatchDecoder
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import ImageTransform, MRIPreprocess

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _make_images(root: Path, n: int, size: int = 128) -> dict[str, str]:
    rng = np.random.default_rng(0)
    paths = {}
    for i in range(n):
        path = root / f"{i}.jpg"
        Image.fromarray(brain_slice(rng, size, i % 2 == 0)).convert("RGB").save(path)
        paths[f"hash{i}"] = str(path)
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _make_images(tmp_path_factory.mktemp("imgs"), 11)


@pytest.fixture(scope="module")
def tiny():
    """A small random-init CNN: exports and compiles in about a second."""
    torch.manual_seed(0)
    backbone = Backbone("simple_cnn", weights="none", out_indices=None)
    return backbone, backbone.build()


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)).max())


def test_runtimes_agree_with_torch(images, tiny, export_dir):
    backbone, model = tiny
    paths = list(images.values())
    out = {}
    for runtime in ("torch", "onnxruntime", "openvino"):
        embedder = FeatureExtractor(str(export_dir), runtime=runtime, progress=False).embedder(
            backbone, MRIPreprocess(), model
        )
        out[runtime] = embedder.embed_batch(paths)
        embedder.close()
        assert out[runtime].shape == (len(paths), embedder.dim) and out[runtime].dtype == np.float32
    assert _rel(out["onnxruntime"], out["torch"]) < 1e-4
    assert _rel(out["openvino"], out["torch"]) < 1e-4


def test_export_is_cached(images, tiny, export_dir, monkeypatch):
    backbone, model = tiny
    extractor = FeatureExtractor(str(export_dir), runtime="onnxruntime", progress=False)
    extractor.embedder(backbone, MRIPreprocess(), model).close()
    (onnx,) = export_dir.glob("models/*/model.onnx")
    mtime = onnx.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("the cached export should have been reused")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    for runtime in ("onnxruntime", "openvino"):
        FeatureExtractor(str(export_dir), runtime=runtime, progress=False).embedder(
            backbone, MRIPreprocess(), model
        ).close()
    assert onnx.stat().st_mtime_ns == mtime
    # each runtime was checked against torch once, when first built on this export
    assert {p.name for p in onnx.parent.glob("agreement-*.json")} >= {
        "agreement-onnxruntime-fp32.json",
        "agreement-openvino-fp32.json",
    }


def test_runtime_and_precision_are_in_the_store_key(tmp_path, tiny):
    backbone, model = tiny
    keys = {
        (runtime, precision): FeatureExtractor(str(tmp_path), runtime=runtime, precision=precision)
        .store_for(backbone, MRIPreprocess(), model)
        .key
        for runtime, precision in [
            ("torch", "fp32"),
            ("onnxruntime", "fp32"),
            ("openvino", "fp32"),
            ("openvino", "bf16"),
        ]
    }
    assert len(set(keys.values())) == 4
    auto = FeatureExtractor(str(tmp_path), device="cpu")
    assert auto.resolve_runtime() == "openvino"
    assert auto.store_for(backbone, MRIPreprocess(), model).key == keys[("openvino", "fp32")]
    with pytest.raises(ValueError, match="bf16"):
        FeatureExtractor(str(tmp_path), runtime="onnxruntime", precision="bf16").resolve_runtime()


def test_embed_batch_keeps_order_and_ignores_batching(images, tiny, export_dir):
    backbone, model = tiny
    embedder = FeatureExtractor(str(export_dir), runtime="openvino", progress=False).embedder(
        backbone, MRIPreprocess(), model
    )
    paths = list(images.values())
    whole = embedder.embed_batch(paths)
    reverse = embedder.embed_batch(paths[::-1])
    pieces = np.concatenate([embedder.embed_batch(paths[i : i + 3]) for i in range(0, len(paths), 3)])
    embedder.close()
    assert np.allclose(reverse[::-1], whole, rtol=1e-5, atol=1e-6)
    assert np.allclose(pieces, whole, rtol=1e-5, atol=1e-6)
    assert embedder.embed_batch([]).shape == (0, embedder.dim)
    # what another process gets: the pickled (extractor, backbone, mri, model)
    import pickle

    extractor, backbone, mri, model = pickle.loads(
        pickle.dumps((FeatureExtractor(str(export_dir), runtime="openvino"), backbone, MRIPreprocess(), model))
    )
    copy = extractor.embedder(backbone, mri, model)
    assert np.array_equal(copy.embed_batch(paths), whole)
    copy.close()


def test_batch_decoder_equals_the_image_transform(images):
    config = Backbone("tf_efficientnet_lite0", weights="none").data_config
    mri = MRIPreprocess(head_crop=True, intensity="percentile", equalize="clahe")
    decoder = BatchDecoder(config, mri, threads=3)
    paths = list(images.values())
    batch = decoder.decode(paths, size=len(paths) + 2)
    decoder.close()
    transform = ImageTransform(config, mri)
    assert batch.shape == (len(paths) + 2, *config["input_size"]) and batch.flags.c_contiguous
    assert np.array_equal(batch[: len(paths)], np.stack([transform(p).numpy() for p in paths]))
    assert not batch[len(paths) :].any()  # padding rows


def test_second_run_reads_the_store(tmp_path, images, tiny):
    backbone, model = tiny
    extractor = FeatureExtractor(cache_dir=str(tmp_path), runtime="onnxruntime", shard_size=4, progress=False)
    store, first = extractor.run(images, backbone, MRIPreprocess(), model)
    assert first["n_computed"] == 11 and first["runtime"] == "onnxruntime"
    assert len(store.shards()) == 2  # shards fill by model batches (onnxruntime: 8): 8 + 3
    _, second = extractor.run(images, backbone, MRIPreprocess(), model)
    assert second["n_computed"] == 0
    _, other = extractor.run(images, backbone, MRIPreprocess(equalize="hist"), model)
    assert other["n_computed"] == 11  # preprocessing is part of the key
    vectors = store.load(list(images))
    assert len(vectors) == 11 and next(iter(vectors.values())).shape == (256,)


def test_concurrent_shards_and_export(tmp_path):
    store = EmbeddingStore(tmp_path, {"backbone": "x"})
    other = EmbeddingStore(tmp_path, {"backbone": "x"})  # a second job on the same key
    store.write_shard(["a", "b"], np.ones((2, 4)))
    other.write_shard(["b", "c"], np.full((2, 4), 2.0))
    assert store.missing(["a", "b", "c", "d"]) == ["d"]
    frame = pd.DataFrame({"file": ["f1", "f2"], "pixel_hash": ["a", "c"], "split": ["train", "pool"], "label": [1, -1]})
    out = pd.read_parquet(store.export(frame, tmp_path / "features.parquet"))
    assert list(out.columns) == ["file", "pixel_hash", "split", "label", "vector"]
    assert out.vector.map(len).tolist() == [4, 4]
    assert not list(tmp_path.rglob("*.tmp"))


CHILD = textwrap.dedent(
    """
    import json, sys, torch
    from brainscan_exp.features import FeatureExtractor
    from brainscan_exp.models.backbones import Backbone
    from brainscan_exp.preprocessing import MRIPreprocess
    cache, runtime, shard, images = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    torch.manual_seed(0)
    backbone = Backbone(sys.argv[5], weights="none", out_indices=None if sys.argv[5] == "simple_cnn" else [3])
    extractor = FeatureExtractor(cache, runtime=runtime, shard_size=shard, decode_threads=1, progress=False)
    store, stats = extractor.run(images, backbone, MRIPreprocess(), backbone.build())
    print(json.dumps(stats))
    """
)


def _child(cache: Path, runtime: str, shard: int, images: dict, backbone: str = "simple_cnn") -> subprocess.Popen:
    import json

    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", CHILD, str(cache), runtime, str(shard), json.dumps(images), backbone]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _reference(images: dict, backbone: str = "simple_cnn") -> tuple[Backbone, torch.nn.Module]:
    torch.manual_seed(0)
    b = Backbone(backbone, weights="none", out_indices=None if backbone == "simple_cnn" else [3])
    model = b.build()
    return b, model


def test_concurrent_writers_same_key(tmp_path, images):
    procs = [_child(tmp_path, "torch", 4, images) for _ in range(2)]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    (key_dir,) = list(tmp_path.iterdir())
    backbone, model = _reference(images)
    store = FeatureExtractor(str(tmp_path), runtime="torch").store_for(backbone, MRIPreprocess(), model)
    assert store.dir == key_dir and store.missing(list(images)) == []
    vectors = store.load()
    assert sorted(vectors) == sorted(images)  # every hash once, whoever wrote it
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.slow
def test_resume_after_kill(tmp_path_factory):
    """SIGKILL once the first shard is committed; the rerun computes exactly what is missing and
    gives the same bytes as an uninterrupted run (every run in a child with the same threads)."""
    import json

    images = _make_images(tmp_path_factory.mktemp("kill_imgs"), 96)
    shard, lite0 = 16, "tf_efficientnet_lite0"
    killed, clean = tmp_path_factory.mktemp("killed"), tmp_path_factory.mktemp("clean")
    proc = _child(killed, "torch", shard, images, lite0)  # torch eager on one thread: slow enough to kill
    deadline = time.time() + 120
    while not list(killed.glob("*/shard-*.parquet")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    backbone, model = _reference(images, lite0)
    store = FeatureExtractor(str(killed), runtime="torch").store_for(backbone, MRIPreprocess(), model)
    missing = store.missing(list(images))
    assert 0 < len(missing) < len(images) and (len(images) - len(missing)) % shard == 0
    rerun, uninterrupted = _child(killed, "torch", shard, images, lite0), _child(clean, "torch", shard, images, lite0)
    stats = json.loads(rerun.communicate(timeout=300)[0].strip().splitlines()[-1])
    assert stats["n_computed"] == len(missing)
    assert uninterrupted.communicate(timeout=300)[0] and uninterrupted.returncode == 0
    reference = FeatureExtractor(str(clean), runtime="torch").store_for(backbone, MRIPreprocess(), model)
    a, b = store.load(list(images)), reference.load(list(images))
    assert len(a) == len(b) == len(images)
    assert all(np.array_equal(a[h], b[h]) for h in images)


def test_mri_preprocessing_steps():
    arr = np.zeros((200, 200), np.uint8)
    arr[50:150, 70:130] = 120
    img = Image.fromarray(arr)
    mri = MRIPreprocess(head_crop=True, crop_margin=0.0)
    assert mri.head_box(arr) == (50, 50, 150, 150)
    cropped = mri(img)
    assert cropped.size == (100, 100)
    for equalize in ("hist", "clahe"):
        out = MRIPreprocess(intensity="percentile", equalize=equalize)(img)
        assert out.mode == "L" and out.size == img.size
    with pytest.raises(ValueError, match="equalize"):
        MRIPreprocess(equalize="gamma")


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite2", "resnet18"])
def test_fast_eval_transform_equals_timms(images, name):
    """The numpy eval path gives exactly timm's eval transform of the replicated channel."""
    from brainscan_exp.preprocessing import model_transform

    config = Backbone(name, weights="none").data_config
    transform = ImageTransform(config, MRIPreprocess(head_crop=True, intensity="percentile", equalize="clahe"))
    reference = model_transform(config)
    for path in list(images.values())[:4]:
        torch_equal = (transform(path) - reference(transform.load(path).convert("RGB"))).abs().max().item()
        assert torch_equal == 0.0


def test_resize_box_pads_with_black_and_antialiases():
    """The head box is resized straight from the image (black where the box leaves it), close to
    PIL's antialiased bicubic of the padded crop."""
    from brainscan_exp.preprocessing import crop_padded, downscale, resize_box

    grey = brain_slice(np.random.default_rng(1), 512)
    box = (-40, 10, 560, 610)  # 600 px square, out of the image on three sides
    padded = crop_padded(grey, box)
    assert padded.shape == (600, 600) and not padded[:, :40].any() and not padded[-98:].any()
    assert np.array_equal(padded[:502, 40:552], grey[10:, :])
    out = resize_box(grey, box, 256)
    reference = np.asarray(Image.fromarray(padded).resize((256, 256), Image.Resampling.BICUBIC), np.float32)
    assert out.shape == (256, 256) and out.dtype == np.uint8
    assert np.abs(out - reference).mean() < 1.5  # grey levels; sub-pixel placement of the pasted part
    inside = (100, 50, 400, 350)
    assert np.array_equal(resize_box(grey, inside, 256), downscale(grey[50:350, 100:400], (256, 256)))
    noise = np.random.default_rng(2).integers(0, 256, (512, 512), dtype=np.uint8)
    assert downscale(noise, (128, 128)).std() < noise.std() / 3  # averaged (PIL: /5), not picked (aliased: /1)


def test_folded_stem_gives_the_three_channel_vectors(tmp_path, images):
    backbone = Backbone("tf_efficientnet_lite0", weights="none", out_indices=[1])
    model = backbone.build()
    vectors = {}
    for fold in (True, False):
        extractor = FeatureExtractor(str(tmp_path), runtime="onnxruntime", fold_stem=fold, progress=False)
        store, _ = extractor.run(images, backbone, MRIPreprocess(), model)
        vectors[fold] = np.stack([store.load(list(images))[h] for h in images])
    assert _rel(vectors[True], vectors[False]) < 1e-5
