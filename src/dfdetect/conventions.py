"""The project's fixed facts, each in one place: the version, class names, the default threshold, where metadata
lives, and the seeds every epoch derives from. Imports nothing of dfdetect: every module may use these."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("dfdetect")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0.0.0+source"

CLASS_NAMES: tuple[str, str] = ("Fake", "Real")
"""Class names indexed by label: 0 = Fake, 1 = Real (the study's convention). A model's logit is for Real."""

DEFAULT_THRESHOLD = 0.5
"""An image is called Real when P(Real) >= this (the study's threshold)."""

METADATA_KEY = "dfdetect"
"""Where dfdetect's metadata lives: a key of the safetensors header, and of an exported ONNX model's properties."""


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of everything drawn in one epoch (data order, dropout): exact resume depends on every user of
    it agreeing, whatever the number of workers, ranks or restarts."""
    return (seed * 1_000_003 + epoch) % 2**63


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's augmentation in one epoch."""
    return (epoch_seed(seed, epoch) * 10_000_019 + index) % 2**63


TTA_CHOICES = ("none", "hflip")
"""Test-time augmentation an ensemble checkpoint may apply: none, or the mean with the horizontal mirror."""
