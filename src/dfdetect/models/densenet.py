"""DenseNet121 from torchvision with the study's head; ImageNet weights from a local file only."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn
from torchvision.models import DenseNet121_Weights
from torchvision.models import densenet121 as tv_densenet121

from dfdetect.data.transforms import Preprocessing
from dfdetect.models.detector import Detector, study_head
from dfdetect.models.registry import register_model
from dfdetect.models.weights import WeightsError, load_into, read_state_dict

logger = logging.getLogger(__name__)

IMAGENET_WEIGHTS = DenseNet121_Weights.IMAGENET1K_V1
# torchvision's old DenseNet checkpoints name layers 'norm.1'; the modules are now 'norm1'.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def torchvision_weights_path() -> Path:
    """Where torchvision looks for the ImageNet weights file (the torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_WEIGHTS.url).name


def load_imagenet_weights(model: nn.Module, weights_file: Path | None) -> Path:
    """Load ImageNet weights into a torchvision DenseNet121 from `weights_file` or the hub cache; never download."""
    path = weights_file or torchvision_weights_path()
    if not path.is_file():
        raise WeightsError(
            f"ImageNet weights for densenet121 not found at {path}. Nothing is downloaded at run time: "
            f"put {Path(IMAGENET_WEIGHTS.url).name} (from {IMAGENET_WEIGHTS.url}) in "
            f"{torchvision_weights_path().parent}/ or pass --weights-file PATH"
        )
    state = read_state_dict(path)
    state = {(_LEGACY_KEY.sub(r"\1\2", key)): value for key, value in state.items()}
    load_into(model, state, path)
    logger.info("loaded ImageNet weights for densenet121 from %s", path)
    return path


@register_model(
    "torchvision DenseNet121 with the study's head (Linear 1024-512, BN, ReLU, Dropout, Linear 512-1)",
    default_weights=torchvision_weights_path,
)
def densenet121(dropout: float = 0.35, pretrained: bool = False, weights_file: Path | None = None) -> Detector:
    """7,480,193 parameters, all trainable; `pretrained` loads ImageNet weights from a local file."""
    network = tv_densenet121(weights=None)
    if pretrained:
        load_imagenet_weights(network, weights_file)
    # torchvision applies a ReLU after the last BatchNorm of `features` before pooling.
    backbone = nn.Sequential(network.features, nn.ReLU(inplace=False))
    head = study_head(network.classifier.in_features, dropout)
    return Detector("densenet121", backbone, head, Preprocessing(input_size=256), explain_layer="backbone.0.norm5")
