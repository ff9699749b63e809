"""The study's own CNN: 8 conv layers (3-64-64-128-128-256-256-512-512), GAP, MLP head."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dfdetect.data.transforms import Preprocessing
from dfdetect.models.detector import Detector
from dfdetect.models.registry import register_model

CHANNELS = (64, 64, 128, 128, 256, 256, 512, 512)
POOL_AFTER = (2, 4, 6)  # 2x2 max-pool after these conv layers (1-based)


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for index, out_channels in enumerate(CHANNELS, start=1):
        layers += [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        if index in POOL_AFTER:
            layers.append(nn.MaxPool2d(2))
        in_channels = out_channels
    return nn.Sequential(*layers)


@register_model("the study's CNN trained from scratch: 8 conv layers + BN, GAP, Linear 512-256-128-1")
def own_cnn(dropout: float = 0.35, pretrained: bool = False, weights_file: Path | None = None) -> Detector:
    """4,853,569 parameters; random initialisation (there are no pretrained weights for it)."""
    features = _features()
    head = nn.Sequential(
        nn.Linear(512, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(256, 128),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(128, 1),
    )
    last_relu = len(features) - 1
    return Detector("own_cnn", features, head, Preprocessing(input_size=256), explain_layer=f"backbone.{last_relu}")
