"""Model registry: `create_model(name, **options)` is the one way to get a detector."""

from dfdetect.models.detector import Detector, count_parameters
from dfdetect.models.registry import UnknownModelError, create_model, list_models, model_entry, register_model
from dfdetect.models.weights import WeightsError

__all__ = [
    "Detector",
    "UnknownModelError",
    "WeightsError",
    "count_parameters",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
]
