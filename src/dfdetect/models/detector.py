"""The one interface every detector has: backbone -> global pool -> head -> one logit for Real."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from dfdetect.data.transforms import Preprocessing


class Detector(nn.Module):
    """A binary deepfake detector. `forward` returns one logit per image; sigmoid(logit) = P(Real)."""

    def __init__(
        self,
        name: str,
        backbone: nn.Module,
        head: nn.Module,
        preprocessing: Preprocessing,
        explain_layer: str,
    ) -> None:
        super().__init__()
        self.name = name
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = head
        self.preprocessing = preprocessing
        # Dotted name of the module whose activations Grad-CAM explains (the last spatial feature map).
        self.explain_layer = explain_layer

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, shape (batch, features)."""
        return torch.flatten(self.pool(self.backbone(images)), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images)).squeeze(1)

    def explained(self) -> Detector:
        """The network Grad-CAM hooks (`explain_layer` names a module of it): the detector itself."""
        return self

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return self.head.parameters()

    def set_backbone_trainable(self, trainable: bool) -> None:
        """Freeze or unfreeze the backbone (frozen BatchNorm layers also stop updating running stats)."""
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(trainable)
        self.backbone_frozen = not trainable

    def train(self, mode: bool = True) -> Detector:
        super().train(mode)
        if mode and getattr(self, "backbone_frozen", False):
            self.backbone.eval()
        return self


def study_head(in_features: int, dropout: float) -> nn.Sequential:
    """The DenseNet121 head of the study: Linear(->512) - BatchNorm1d - ReLU - Dropout - Linear(512->1)."""
    return nn.Sequential(
        nn.Linear(in_features, 512),
        nn.BatchNorm1d(512),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(512, 1),
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
