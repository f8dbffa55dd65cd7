"""``features.precision=int8``: NNCF post-training quantisation on a tiny model, calibrated on a
seeded sample of the images being embedded, cached under a key that follows that sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from brainscan_exp.data.demo import brain_slice
from brainscan_exp.features import FeatureExtractor
from brainscan_exp.features.quantize import calibration_sample
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import MRIPreprocess

pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root, rng, paths = tmp_path_factory.mktemp("imgs"), np.random.default_rng(0), {}
    for i in range(12):
        Image.fromarray(brain_slice(rng, 128, i % 2 == 0)).convert("RGB").save(root / f"{i}.jpg")
        paths[f"hash{i}"] = str(root / f"{i}.jpg")
    return paths


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)).max())


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    backbone = Backbone("simple_cnn", weights="none", out_indices=None)
    return backbone, backbone.build()


def _int8(cache, **kw) -> FeatureExtractor:
    return FeatureExtractor(str(cache), runtime="openvino", precision="int8", progress=False, **kw)


def test_calibration_sample_is_seeded_and_order_free():
    hashes = [f"h{i:03d}" for i in range(50)]
    a = calibration_sample(hashes, 10, seed=0)
    assert a == calibration_sample(hashes[::-1], 10, seed=0) == sorted(a) and len(set(a)) == 10
    assert a != calibration_sample(hashes, 10, seed=1)
    assert calibration_sample(hashes[:5], 10) == hashes[:5]  # fewer images than the size: all of them


def test_int8_runs_near_fp32_and_is_built_once(images, tiny, tmp_path, monkeypatch):
    import nncf

    backbone, model = tiny
    mri = MRIPreprocess()
    store, stats = _int8(tmp_path, calibration_size=6).run(images, backbone, mri, model)
    assert stats["precision"] == "int8" and stats["n_computed"] == len(images)
    (xml,) = tmp_path.glob("models/*/int8-*/model.xml")
    assert xml.with_suffix(".bin").exists()
    fp32, _ = FeatureExtractor(str(tmp_path), runtime="openvino", progress=False).run(images, backbone, mri, model)
    a, b = store.table().take(list(images)), fp32.table().take(list(images))
    rel = _rel(a, b)
    # quantised: not the fp32 vectors (no 1e-4 check for it), but close to them on the images it was calibrated on
    assert 1e-4 < rel < 0.1, rel
    # lower precisions log their distance to torch fp32, beside the export's fp32 check
    assert list(xml.parent.parent.glob(f"agreement-openvino-{xml.parent.name}.json"))

    def no_quantize(*args, **kwargs):
        raise AssertionError("the cached INT8 model should have been reused")

    monkeypatch.setattr(nncf, "quantize", no_quantize)
    embedder = _int8(tmp_path, calibration_size=6).embedder(
        backbone, mri, model, calibration=_int8(tmp_path, calibration_size=6).calibration_for(images)
    )
    again = embedder.embed_batch(list(images.values()))
    embedder.close()
    assert np.array_equal(again, a)


def test_int8_keys_follow_the_calibration_sample(images, tiny, tmp_path):
    backbone, model = tiny
    mri = MRIPreprocess()
    key = lambda ex: ex.store_for(backbone, mri, model, paths_by_hash=images).key  # noqa: E731
    base = key(_int8(tmp_path, calibration_size=6))
    assert key(_int8(tmp_path, calibration_size=6)) == base
    assert key(_int8(tmp_path, calibration_size=6, calibration_seed=1)) != base
    assert key(_int8(tmp_path, calibration_size=8)) != base
    fp32 = FeatureExtractor(str(tmp_path), runtime="openvino").store_for(backbone, mri, model).key
    assert (
        fp32 not in {base}
        and fp32
        == FeatureExtractor(str(tmp_path), runtime="openvino").store_for(backbone, mri, model, paths_by_hash=images).key
    )  # fp32 has no calibration: the images do not enter its key
    # two samples, two quantised models
    for seed in (0, 1):
        _int8(tmp_path, calibration_size=6, calibration_seed=seed).model_file(
            backbone, mri, model, _int8(tmp_path, calibration_size=6, calibration_seed=seed).calibration_for(images)
        )
    assert len(list(tmp_path.glob("models/*/int8-*/model.xml"))) == 2


def test_int8_needs_openvino_and_its_images(tiny, tmp_path):
    backbone, model = tiny
    with pytest.raises(ValueError, match="features.runtime=openvino"):
        FeatureExtractor(str(tmp_path), runtime="onnxruntime", precision="int8").resolve_runtime()
    with pytest.raises(ValueError, match="paths_by_hash"):
        _int8(tmp_path).store_for(backbone, MRIPreprocess(), model)
