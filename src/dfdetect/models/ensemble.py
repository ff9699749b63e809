"""Ensembles and test-time augmentation: several trained detectors (or one) scored as one detector.

`Ensemble` averages its members' logits over the views it is given: the image itself and, with `tta="hflip"`,
its mirror image; with `weights`, a weighted mean over members (each member's views share its weight). It is a
Detector like any other, so a checkpoint holding one is calibrated, evaluated, exported to ONNX (the flip is part
of the graph), served and packaged by the same code as a single network.

Its checkpoint says what it is built from: metadata `model` is "ensemble" and `ensemble` is the spec
(`members`: each member's architecture, dropout and where it came from; `tta`; `weights`, normalised to sum to 1,
when the members are not weighed equally). Members must share their preprocessing (input size and normalisation),
so one preprocessed batch feeds them all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from dfdetect.conventions import TTA_CHOICES
from dfdetect.errors import ConfigError
from dfdetect.models.detector import Detector
from dfdetect.models.factory import create_model
from dfdetect.preprocessing import Preprocessing

ENSEMBLE = "ensemble"
"""The `model` name in an ensemble checkpoint's metadata."""


def normalised_weights(weights: Sequence[float] | None, count: int, what: str) -> list[float]:
    """`weights` (one per network; equal when None) scaled to sum to 1, or an error saying what is wrong with them;
    `what` names their use in the message ("averaging", "ensemble")."""
    found = [1.0] * count if weights is None else [float(weight) for weight in weights]
    if len(found) != count:
        raise ConfigError(f"{len(found)} {what} weight(s) given for {count} network(s)")
    if any(weight < 0 or not math.isfinite(weight) for weight in found) or sum(found) <= 0:
        raise ConfigError(f"{what} weights must be finite, >= 0 and not all 0; got {found}")
    total = sum(found)
    return [weight / total for weight in found]


class Ensemble(Detector):
    """The mean logit of `members` over the original image and, with tta="hflip", its horizontal mirror; with
    `weights` (one per member, normalised to sum to 1), the members' logits are weighed by them."""

    def __init__(self, members: Sequence[Detector], tta: str = "none", weights: Sequence[float] | None = None) -> None:
        nn.Module.__init__(self)  # no backbone/head of its own: the members are the model
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        self.weights = normalised_weights(weights, len(members), "ensemble")
        if tta not in TTA_CHOICES:
            raise ConfigError(f"unknown test-time augmentation {tta!r}; known: {', '.join(TTA_CHOICES)}")
        first = members[0].preprocessing
        for member in members[1:]:
            if member.preprocessing != first:
                raise ConfigError(
                    f"ensemble members need the same preprocessing: {members[0].name} has {first.to_dict()}, "
                    f"{member.name} has {member.preprocessing.to_dict()}"
                )
        self.name = ENSEMBLE
        self.members = nn.ModuleList(members)
        self.tta = tta
        self.preprocessing = first
        self.explain_layer = f"members.0.{members[0].explain_layer}"

    def views(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [images, images.flip(3)] if self.tta == "hflip" else [images]

    @property
    def weighted(self) -> bool:
        """Whether the members are weighed unequally."""
        return any(not math.isclose(weight, self.weights[0]) for weight in self.weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        views = self.views(images)
        per_member = [torch.stack([member(view) for view in views]).mean(0) for member in self.members]
        return sum(weight * logits for weight, logits in zip(self.weights, per_member, strict=True))  # type: ignore[return-value]

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("an ensemble has no single feature vector; use a member's")

    def explained(self) -> Detector:
        """Grad-CAM explains the first member on the image as given (one forward pass per hooked layer)."""
        first: Detector = self.members[0]  # type: ignore[assignment]
        return first

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def spec(self, sources: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint's `ensemble` entry: per member its architecture and dropout, plus `sources` (where each
        came from: path, epoch, validation metrics); `weights` when the members are weighed unequally."""
        members = []
        for member, source in zip(self.members, sources, strict=True):
            members.append({"model": member.name, "dropout": dropout_of(member), **source})
        spec: dict[str, Any] = {"members": members, "tta": self.tta}
        if self.weighted:
            spec["weights"] = list(self.weights)
        return spec


def dropout_of(model: nn.Module) -> float:
    """The dropout probability of a detector's head (0 when it has none); inference ignores it, rebuilding
    needs it only to match the architecture."""
    rates = [module.p for module in model.modules() if isinstance(module, nn.Dropout)]
    return float(rates[0]) if rates else 0.0


def build_ensemble(spec: dict[str, Any], preprocessing: dict[str, Any]) -> Ensemble:
    """An untrained Ensemble shaped like `spec` (the checkpoint's `ensemble` entry), ready for its state dict."""
    members = []
    for entry in spec["members"]:
        member = create_model(entry["model"], dropout=float(entry.get("dropout", 0.0)), pretrained=False)
        member.preprocessing = Preprocessing.from_dict(preprocessing)
        members.append(member)
    return Ensemble(members, tta=spec.get("tta", "none"), weights=spec.get("weights"))
