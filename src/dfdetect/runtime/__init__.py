"""Scoring runtimes. Imports run one way: a torch-free base, one module per backend (torch, ONNX Runtime,
OpenVINO), export, and the factory that alone knows every backend and imports each only when it is chosen."""

from dfdetect.runtime.base import METADATA_KEY, BasePredictor, Prediction, expand_paths, preprocess_numpy
from dfdetect.runtime.factory import RUNTIMES, load_predictor

__all__ = [
    "METADATA_KEY",
    "RUNTIMES",
    "BasePredictor",
    "Prediction",
    "expand_paths",
    "load_predictor",
    "preprocess_numpy",
]
