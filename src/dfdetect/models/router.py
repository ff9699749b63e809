"""A detector that sends noisy inputs to a second, noise-robust network: `NoiseRouter`.

Detectors that learned up-sampling traces read fine noise as a generator's trace: one grey level of Gaussian noise
takes the default detector's accuracy on DFDC Validation from 0.894 to 0.615 (at 3.0.0's `eer` threshold; 0.656 at
3.1.0's), while `dfdc-lite0` (DFDC's fakes only, 128 px) loses 0.006 (docs/results.md, sections 28 and 36).
`NoiseRouter` estimates each input's noise inside the forward pass, on the very tensor the primary network sees,
with the estimator `predict` reports (`dfdetect.quality.noise_sigma`: Immerkær's 3x3 mask, per RGB channel, in grey
levels), and returns the primary's logit for inputs at or below `noise_limit` and the fallback's for noisier ones.

The fallback sees the primary's input resized to its own input size by a fixed matrix that holds Pillow's
resampling weights (so `predict` on a 224 px face gives the fallback what its own preprocessing would, up to
rounding to 8 bits) and renormalised to its mean and std. Its logit is mapped onto the primary's scale,
`scale * logit + shift`, so that the two networks' calibrated thresholds coincide: with temperatures T1, T2 and
thresholds t1, t2 (P(Real), from `dfdetect calibrate`), scale = T1 / T2 and shift = T1 (logit t1 - logit t2).
The primary's calibration then holds for both branches. Everything is plain tensor algebra (no data-dependent
control flow), so a routed checkpoint is calibrated, evaluated, perturbed, exported to ONNX, served and packaged as
any detector; Grad-CAM explains the primary network.

Its checkpoint's metadata `model` is "routed"; `routed` holds `noise_limit`, `scale`, `shift` and, for `primary`
and `fallback`, what rebuilds them (`model`, `preprocessing`, `dropout`, an ensemble's `ensemble` spec) and where
they came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from dfdetect.calibration import threshold_logit
from dfdetect.data.images import RESAMPLING
from dfdetect.errors import ConfigError
from dfdetect.models.detector import Detector
from dfdetect.models.ensemble import ENSEMBLE, build_ensemble
from dfdetect.models.factory import create_model
from dfdetect.preprocessing import Preprocessing
from dfdetect.quality import NOISE_SCALE

ROUTED = "routed"
"""The `model` name in a routed checkpoint's metadata."""


def check_noise_limit(noise_limit: float) -> None:
    """A clear error unless the limit is a positive, finite number of grey levels."""
    if not (math.isfinite(noise_limit) and noise_limit > 0):
        raise ConfigError(f"the noise limit must be a positive number of grey levels, got {noise_limit:g}")


def resize_matrix(size_in: int, size_out: int, interpolation: str) -> torch.Tensor:
    """(size_out, size_in) weights W such that W @ x @ W.T resizes a square image as Pillow resizes it with this
    interpolation (including its antialiasing when shrinking); read off Pillow itself by resizing a unit basis."""
    resample = RESAMPLING.get(interpolation, Image.Resampling.BILINEAR)
    basis = Image.fromarray(np.eye(size_in, dtype=np.float32), mode="F")  # row i = unit vector e_i
    rows = np.asarray(basis.resize((size_out, size_in), resample), dtype=np.float32)  # row i = resized e_i
    return torch.from_numpy(np.ascontiguousarray(rows.T))


def estimated_noise(pixels: torch.Tensor) -> torch.Tensor:
    """Per image of a (N, 3, H, W) batch in grey levels (0-255), Immerkær's estimate of white-noise sigma, averaged
    over the RGB channels: `dfdetect.quality.noise_sigma` on tensors. The 3x3 mask is the outer product of
    [1, -2, 1] with itself, so two second differences give its response (elementwise, fp32 under autocast too)."""
    pixels = pixels.float()
    across = pixels[..., :, 2:] - 2 * pixels[..., :, 1:-1] + pixels[..., :, :-2]
    response = across[..., 2:, :] - 2 * across[..., 1:-1, :] + across[..., :-2, :]
    return response.abs().mean(dim=(1, 2, 3)) * NOISE_SCALE


def aligned_logit(primary: dict[str, Any] | None, fallback: dict[str, Any] | None) -> tuple[float, float]:
    """(scale, shift) that map the fallback's logit onto the primary's scale, given each one's stored calibration
    (temperature, threshold; none = 1 and 0.5): their calibrated thresholds coincide after the map."""
    t1, p1 = float((primary or {}).get("temperature", 1.0)), float((primary or {}).get("threshold", 0.5))
    t2, p2 = float((fallback or {}).get("temperature", 1.0)), float((fallback or {}).get("threshold", 0.5))
    return t1 / t2, t1 * (threshold_logit(p1) - threshold_logit(p2))


class NoiseRouter(Detector):
    """The primary's logit for inputs with estimated noise <= `noise_limit` grey levels, the fallback's (mapped by
    `scale * logit + shift`) above it."""

    mean: torch.Tensor
    std: torch.Tensor
    fallback_mean: torch.Tensor
    fallback_std: torch.Tensor
    resize: torch.Tensor

    def __init__(
        self, primary: Detector, fallback: Detector, noise_limit: float, scale: float = 1.0, shift: float = 0.0
    ) -> None:
        nn.Module.__init__(self)  # no backbone/head of its own
        check_noise_limit(noise_limit)
        self.name = ROUTED
        self.primary = primary
        self.fallback = fallback
        self.noise_limit = float(noise_limit)
        self.scale = float(scale)
        self.shift = float(shift)
        self.preprocessing = primary.preprocessing
        self.explain_layer = f"primary.{primary.explain_layer}"
        given, wanted = primary.preprocessing, fallback.preprocessing
        self.register_buffer("mean", torch.tensor(given.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(given.std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("fallback_mean", torch.tensor(wanted.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("fallback_std", torch.tensor(wanted.std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer(
            "resize", resize_matrix(given.input_size, wanted.input_size, wanted.interpolation), persistent=False
        )

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """The primary's preprocessed input back in pixels in [0, 1]."""
        return images * self.std + self.mean

    def noise(self, images: torch.Tensor) -> torch.Tensor:
        """Each preprocessed image's estimated noise (grey levels), as `predict` reports it."""
        return estimated_noise(self.pixels(images) * 255.0)

    def fallback_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] at the primary's size, resized and normalised as the fallback's preprocessing would."""
        resize = self.resize.to(pixels.dtype)
        resized = resize @ pixels @ resize.T
        return (resized - self.fallback_mean) / self.fallback_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = self.pixels(images)  # once, for the noise estimate and the fallback's input
        primary = self.primary(images)
        fallback = self.fallback(self.fallback_input(pixels)) * self.scale + self.shift
        noisy = estimated_noise(pixels * 255.0) > self.noise_limit
        return torch.where(noisy, fallback.to(primary.dtype), primary)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("a routed detector has no single feature vector; use its primary's")

    def explained(self) -> Detector:
        """Grad-CAM explains the primary network (the one that scores inputs of ordinary noise)."""
        primary: Detector = self.primary
        return primary.explained()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())


def architecture_entry(model: Detector, metadata: dict[str, Any]) -> dict[str, Any]:
    """What rebuilds one branch of a router: its model name, preprocessing, dropout and an ensemble's spec."""
    entry: dict[str, Any] = {
        "model": metadata["model"],
        "preprocessing": model.preprocessing.to_dict(),
        "config": {"dropout": float(metadata.get("config", {}).get("dropout", 0.0))},
    }
    for key in (ENSEMBLE, ROUTED):
        if key in metadata:
            entry[key] = metadata[key]
    return entry


def build_detector(metadata: dict[str, Any]) -> Detector:
    """An untrained detector shaped like a checkpoint's metadata (one network, an ensemble or a router), ready for
    its state dict."""
    if metadata["model"] == ENSEMBLE:
        return build_ensemble(metadata[ENSEMBLE], metadata["preprocessing"])
    if metadata["model"] == ROUTED:
        spec = metadata[ROUTED]
        return NoiseRouter(
            build_detector(spec["primary"]),
            build_detector(spec["fallback"]),
            noise_limit=float(spec["noise_limit"]),
            scale=float(spec["scale"]),
            shift=float(spec["shift"]),
        )
    dropout = float(metadata.get("config", {}).get("dropout", 0.0))
    model = create_model(metadata["model"], dropout=dropout, pretrained=False)
    model.preprocessing = Preprocessing.from_dict(metadata["preprocessing"])
    return model
