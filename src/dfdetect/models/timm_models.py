"""Any timm model as a detector backbone (`timm/<name>`), randomly initialised or from a local file."""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
from torch import nn

from dfdetect.data.transforms import Preprocessing
from dfdetect.errors import UnknownModelError
from dfdetect.models.detector import Detector, study_head
from dfdetect.models.weights import WeightsError, load_into, read_state_dict

logger = logging.getLogger(__name__)


class TimmFeatures(nn.Module):
    """Wraps a timm model so that calling it returns its last spatial feature map."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.forward_features(images)  # type: ignore[operator]


def preprocessing_of(network: nn.Module) -> Preprocessing:
    """The preprocessing timm's pretrained config declares for a model."""
    config = getattr(network, "pretrained_cfg", {}) or {}
    return Preprocessing(
        input_size=int(config.get("input_size", (3, 224, 224))[-1]),
        mean=tuple(config.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(config.get("std", (0.229, 0.224, 0.225))),
        interpolation=str(config.get("interpolation", "bilinear")),
    )


def last_feature_layer(network: nn.Module) -> str:
    """Dotted name (inside the timm model) of the module that produces the final feature map."""
    if isinstance(getattr(network, "conv_head", None), nn.Conv2d) and hasattr(network, "bn2"):
        return "bn2"  # EfficientNet / MobileNet family: the head conv's norm + activation is the last map
    info = getattr(network, "feature_info", None)
    if info:
        return str(info[-1]["module"])
    names = [name for name, module in network.named_modules() if isinstance(module, nn.Conv2d)]
    return names[-1]


def create_timm_backbone(name: str, weights_file: Path | None, num_classes: int = 1000) -> nn.Module:
    """A timm model with its classifier; weights (optional) from a local file in timm's key names."""
    if not timm.is_model(name):
        raise UnknownModelError(f"unknown timm model {name!r}; `timm.list_models()` lists the available names")
    network = timm.create_model(name, pretrained=False, num_classes=num_classes)
    if weights_file is not None:
        load_into(network, read_state_dict(weights_file), weights_file)
        logger.info("loaded %s weights from %s", name, weights_file)
    return network


def detector_from_timm(
    name: str, network: nn.Module, dropout: float, preprocessing: Preprocessing | None = None
) -> Detector:
    """Turn a timm classifier into a Detector: its features, global pool, the study's head."""
    explain_layer = f"backbone.network.{last_feature_layer(network)}"
    num_features = int(network.num_features)  # type: ignore[arg-type]
    network.reset_classifier(0)  # type: ignore[operator]
    return Detector(
        name,
        TimmFeatures(network),
        study_head(num_features, dropout),
        preprocessing or preprocessing_of(network),
        explain_layer=explain_layer,
    )


def create_timm_detector(name: str, dropout: float, pretrained: bool, weights_file: Path | None) -> Detector:
    """`timm/<name>`: random initialisation, or `pretrained` from `weights_file` (nothing is downloaded)."""
    if pretrained and weights_file is None:
        raise WeightsError(
            f"timm/{name}: --pretrained needs --weights-file PATH (a .safetensors or .pth state dict in timm's "
            "key names, e.g. the model's file from the Hugging Face hub); nothing is downloaded at run time"
        )
    network = create_timm_backbone(name, weights_file if pretrained else None)
    return detector_from_timm(f"timm/{name}", network, dropout)
