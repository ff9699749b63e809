"""The model registry: `@register_model` records builders; it knows no model file (models/__init__ imports them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dfdetect.errors import UnknownModelError, WeightsError
from dfdetect.models.detector import Detector

Builder = Callable[..., Detector]
WeightsLocator = Callable[[], Path]
"""Where a model's default pretrained weights are (raises WeightsError, saying how to get them, when it can't tell)."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, a one-line description, and where its pretrained weights live, if any."""

    name: str
    builder: Builder
    description: str
    default_weights: WeightsLocator | None = None

    @property
    def pretrained_available(self) -> bool:
        """Whether the model can start from pretrained weights at all (given the file)."""
        return self.default_weights is not None

    def weights_present(self) -> bool:
        """Whether its default pretrained weights are on this machine now (packaged, or in a cache)."""
        if self.default_weights is None:
            return False
        try:
            return self.default_weights().is_file()
        except WeightsError:
            return False


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(description: str, default_weights: WeightsLocator | None = None) -> Callable[[Builder], Builder]:
    """Register a builder under its function name; a second builder with the same name is an error."""

    def decorate(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, description, default_weights)
        return builder

    return decorate


def list_models() -> list[str]:
    """Names of the registered models, sorted; `timm/<name>` builds any timm model besides these."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The entry of a registered model; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}, or timm/<any timm model name>")
    return _REGISTRY[name]
