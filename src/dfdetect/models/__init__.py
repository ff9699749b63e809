"""Model registry: `create_model(name, **options)` is the one way to get a detector.

Importing this package imports every model module, whose `@register_model` decorators fill the registry
(as timm does it); the registry module itself knows no model.
"""

from dfdetect.models import densenet, efficientnet, own_cnn  # noqa: F401  (registers the built-in models)
from dfdetect.models.detector import Detector, count_parameters
from dfdetect.models.factory import create_model, weights_present
from dfdetect.models.registry import ModelEntry, UnknownModelError, list_models, model_entry, register_model
from dfdetect.models.weights import WeightsError

__all__ = [
    "Detector",
    "ModelEntry",
    "UnknownModelError",
    "WeightsError",
    "count_parameters",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
    "weights_present",
]
