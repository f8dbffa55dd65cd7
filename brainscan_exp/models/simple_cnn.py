"""The brief's small CNN, trained from scratch: a baseline that shows what pretraining buys."""

from __future__ import annotations

from torch import nn


class SimpleCNN(nn.Module):
    """Four conv blocks and global pooling; exposes timm's ``num_features``/``pretrained_cfg``."""

    pretrained_cfg = {
        "input_size": (3, 128, 128),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "first_conv": "features.0",
    }

    def __init__(self, in_chans: int = 3, width: int = 32, num_classes: int = 0, **_: object):
        super().__init__()
        layers, channels = [], in_chans
        for i in range(4):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            layers += [nn.MaxPool2d(2)] if i < 3 else [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.head = nn.Linear(channels, num_classes) if num_classes else nn.Identity()

    def forward(self, x):
        return self.head(self.features(x))
