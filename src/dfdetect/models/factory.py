"""`create_model(name, **options)`: the one way anything gets a detector, registered or `timm/<name>`."""

from __future__ import annotations

from pathlib import Path

from dfdetect.models.detector import Detector
from dfdetect.models.registry import model_entry
from dfdetect.models.timm_models import create_timm_detector

TIMM_PREFIX = "timm/"


def create_model(
    name: str,
    dropout: float = 0.35,
    pretrained: bool = False,
    weights_file: Path | None = None,
    image_size: int | None = None,
) -> Detector:
    """Build a registered model (or `timm/<name>`); `image_size` overrides its default input size."""
    if name.startswith(TIMM_PREFIX):
        model = create_timm_detector(name.removeprefix(TIMM_PREFIX), dropout, pretrained, weights_file)
    else:
        entry = model_entry(name)
        if pretrained and not entry.pretrained_available:
            raise ValueError(f"model {name!r} has no pretrained weights; train it without --pretrained")
        model = entry.builder(dropout=dropout, pretrained=pretrained, weights_file=weights_file)
    if image_size is not None:
        model.preprocessing = model.preprocessing.with_size(image_size)
    return model


def weights_present(name: str) -> bool:
    """Whether `name` can start from pretrained weights on this machine without a --weights-file."""
    return not name.startswith(TIMM_PREFIX) and model_entry(name).weights_present()
