"""The features stage: content-keyed cache, bitwise reproducibility, Parquet export, preprocessing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainscan_exp.data.demo import brain_slice
from brainscan_exp.features import EmbeddingStore, FeatureExtractor, extract_embeddings
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import ImageTransform, MRIPreprocess


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = {}
    for i in range(11):
        path = root / f"{i}.jpg"
        Image.fromarray(brain_slice(rng, 128, i % 2 == 0)).convert("RGB").save(path)
        paths[f"hash{i}"] = str(path)
    return paths


@pytest.fixture(scope="module")
def lite0():
    backbone = Backbone("tf_efficientnet_lite0")
    return backbone, backbone.build()


def test_second_run_reads_the_store(tmp_path, images, lite0):
    backbone, model = lite0
    extractor = FeatureExtractor(cache_dir=str(tmp_path), num_workers=0, progress=False)
    store, first = extractor.run(images, backbone, MRIPreprocess(), model)
    assert first["n_computed"] == 11
    _, second = extractor.run(images, backbone, MRIPreprocess(), model)
    assert second["n_computed"] == 0
    _, other = extractor.run(images, backbone, MRIPreprocess(equalize="hist"), model)
    assert other["n_computed"] == 11  # preprocessing is part of the key
    vectors = store.load(list(images))
    assert len(vectors) == 11 and next(iter(vectors.values())).shape == (1280,)


def test_embeddings_are_bitwise_identical_across_batches_and_workers(images, lite0):
    backbone, model = lite0
    transform = ImageTransform(backbone.data_config, MRIPreprocess())
    paths = list(images.values())
    a, _ = extract_embeddings(model, paths, transform, batch_size=32, num_workers=0, progress=False)
    b, _ = extract_embeddings(model, paths, transform, batch_size=3, num_workers=2, progress=False)
    c, _ = extract_embeddings(model, paths[5:], transform, batch_size=5, num_workers=1, progress=False)
    assert np.array_equal(a, b)
    assert np.array_equal(a[5:], c)  # position in the stream does not matter


def test_concurrent_parts_and_export(tmp_path):
    store = EmbeddingStore(tmp_path, {"backbone": "x"})
    other = EmbeddingStore(tmp_path, {"backbone": "x"})  # a second job on the same key
    store.append(["a", "b"], np.ones((2, 4)))
    other.append(["b", "c"], np.full((2, 4), 2.0))
    assert store.missing(["a", "b", "c", "d"]) == ["d"]
    frame = pd.DataFrame({"file": ["f1", "f2"], "pixel_hash": ["a", "c"], "split": ["train", "pool"], "label": [1, -1]})
    out = pd.read_parquet(store.export(frame, tmp_path / "features.parquet"))
    assert list(out.columns) == ["file", "pixel_hash", "split", "label", "vector"]
    assert out.vector.map(len).tolist() == [4, 4]
    assert not list(tmp_path.rglob("*.tmp"))


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
