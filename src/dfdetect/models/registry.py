"""The model registry: `@register_model` builders and `create_model(name, **options)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dfdetect.errors import UnknownModelError
from dfdetect.models.detector import Detector

Builder = Callable[..., Detector]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder and a one-line description."""

    name: str
    builder: Builder
    description: str
    pretrained_available: bool


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(description: str, pretrained_available: bool = False) -> Callable[[Builder], Builder]:
    """Register a builder under its function name; a second builder with the same name is an error."""

    def decorate(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, description, pretrained_available)
        return builder

    return decorate


def list_models() -> list[str]:
    """Names of the registered models, sorted; `timm/<name>` builds any timm model besides these."""
    _import_builtin_models()
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    _import_builtin_models()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}, or timm/<any timm model name>")
    return _REGISTRY[name]


def create_model(
    name: str,
    dropout: float = 0.35,
    pretrained: bool = False,
    weights_file: Path | None = None,
    image_size: int | None = None,
) -> Detector:
    """Build a registered model (or `timm/<name>`); `image_size` overrides its default input size."""
    if name.startswith("timm/"):
        from dfdetect.models.timm_models import create_timm_detector

        model = create_timm_detector(name.removeprefix("timm/"), dropout, pretrained, weights_file)
    else:
        entry = model_entry(name)
        if pretrained and not entry.pretrained_available:
            raise ValueError(f"model {name!r} has no pretrained weights; train it without --pretrained")
        model = entry.builder(dropout=dropout, pretrained=pretrained, weights_file=weights_file)
    if image_size is not None:
        model.preprocessing = model.preprocessing.with_size(image_size)
    return model


def _import_builtin_models() -> None:
    # Importing the modules runs their @register_model decorators.
    from dfdetect.models import densenet, efficientnet, own_cnn  # noqa: F401
