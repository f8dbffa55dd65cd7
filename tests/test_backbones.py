"""Weights: packaged offline files, local checkpoints (timm / torchvision format), and a clear
failure when the hub cannot be reached."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from brainscan_exp.models import backbones
from brainscan_exp.models.backbones import Backbone, WeightsUnavailableError


def test_offline_lite_weights_load_strictly():
    model = Backbone("tf_efficientnet_lite0").build().eval()
    fresh = Backbone("tf_efficientnet_lite0", weights="none").build()
    assert Backbone.digest(model) != Backbone.digest(fresh)
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1280)


def test_lite_preprocessing_comes_from_timm():
    cfg = Backbone("tf_efficientnet_lite0").data_config
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.5, 0.5, 0.5)
    assert cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 0.875
    assert Backbone("resnet18", weights="none").data_config["mean"] == pytest.approx((0.485, 0.456, 0.406))


def test_adapt_conv_sums_the_stem():
    rgb = Backbone("tf_efficientnet_lite0").build()
    grey = Backbone("tf_efficientnet_lite0", grey_mode="adapt_conv").build()
    assert grey.conv_stem.weight.shape[1] == 1
    torch.testing.assert_close(grey.conv_stem.weight, rgb.conv_stem.weight.sum(1, keepdim=True))


def test_no_hub_fails_fast_with_offline_choices(monkeypatch):
    monkeypatch.setattr(backbones, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr(Backbone, "_hub_cache_file", staticmethod(lambda model: None))
    with pytest.raises(WeightsUnavailableError) as err:
        Backbone("resnet18").build()
    message = str(err.value)
    assert "backbone.weights=none" in message and "tf_efficientnet_lite0" in message and "checkpoint" in message


def test_local_timm_checkpoint(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "r18.pth")
    model = Backbone("resnet18", weights=str(tmp_path / "r18.pth")).build()
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)


def test_local_torchvision_checkpoint(tmp_path):
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "tv.pth")
    model = Backbone("resnet18", weights=str(tmp_path / "tv.pth")).build()
    torch.testing.assert_close(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


def test_wrong_checkpoint_is_explained(tmp_path):
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsUnavailableError, match="do not fit resnet18"):
        Backbone("resnet18", weights=str(tmp_path / "bad.pth")).build()
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        Backbone("resnet18", weights=str(tmp_path / "missing.pth")).build()


def test_embedding_pools_the_chosen_timm_feature_level():
    """out_indices=[3]: the pooled stride-16 maps (112 channels on Lite0); later layers are pruned."""
    full = Backbone("tf_efficientnet_lite0").build().eval()
    pruned = Backbone("tf_efficientnet_lite0", out_indices=[3]).build().eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        out = pruned(x)
        expected = full.forward_intermediates(x, indices=[3], intermediates_only=True)[0].mean((2, 3))
    assert out.shape == (2, 112) and pruned.num_features == 112
    torch.testing.assert_close(out, expected)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in full.parameters()) / 3
    assert Backbone.digest(pruned) != Backbone.digest(full)
    both = Backbone("resnet18", weights="none", out_indices=[2, 3]).build()
    assert both(torch.zeros(1, 3, 64, 64)).shape == (1, 128 + 256)


def test_bad_feature_level_is_explained():
    with pytest.raises(ValueError, match=r"levels 0\.\.4"):
        Backbone("tf_efficientnet_lite0", weights="none", out_indices=[7]).build()
    with pytest.raises(ValueError, match="out_indices=null"):
        Backbone("simple_cnn", weights="none", out_indices=[3]).build()


def test_folded_stem_is_the_same_network_on_grey_input():
    """Feeding the slice once to the RGB-summed stem equals feeding it three times (Lite: same
    mean/std per channel); a model whose channels normalise differently is not folded."""
    from brainscan_exp.models.backbones import fold_grey_stem, stem_foldable

    backbone = Backbone("tf_efficientnet_lite0", weights="none", out_indices=[3])
    model = backbone.build().eval()
    folded, config = fold_grey_stem(model, backbone.data_config)
    assert config["input_size"] == (1, 224, 224) and config["mean"] == (0.5,)
    grey = torch.rand((2, 1, 224, 224))
    with torch.inference_mode():
        torch.testing.assert_close(folded(grey), model(grey.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5)
    assert model.model.conv_stem.in_channels == 3  # the original is left alone
    resnet = Backbone("resnet18", weights="none").data_config
    assert not stem_foldable(resnet)
    with pytest.raises(ValueError, match="differ across channels"):
        fold_grey_stem(Backbone("resnet18", weights="none").build(), resnet)
