"""dfdetect: train, tune, evaluate, explain and serve CNN detectors of deepfake face images.

Labels follow the study this project reproduces: Fake = 0, Real = 1. A model's logit is for Real.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dfdetect")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

CLASS_NAMES: tuple[str, str] = ("Fake", "Real")
"""Class names indexed by label: 0 = Fake, 1 = Real (the study's convention)."""

METADATA_KEY = "dfdetect"
"""Where dfdetect's metadata lives: a key of the safetensors header, and of an exported ONNX model's properties."""

__all__ = ["CLASS_NAMES", "METADATA_KEY", "__version__"]
