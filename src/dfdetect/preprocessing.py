"""What a model expects and how training augments, as plain data (no torch): shared by every runtime."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects: square input size, normalisation and resize interpolation."""

    input_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def with_size(self, input_size: int) -> Preprocessing:
        return replace(self, input_size=input_size)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            input_size=int(data["input_size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=str(data["interpolation"]),
        )


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; each transform has its own probability (0 turns it off)."""

    hflip_p: float = 0.5
    rotation_p: float = 0.3
    rotation_degrees: float = 10.0
    color_jitter_p: float = 0.3
    color_jitter_strength: float = 0.2
    resized_crop_p: float = 0.3
    resized_crop_min_scale: float = 0.8
    # JPEG re-compression and blur as in CNNDetection (Wang et al. 2020) and DeepfakeBench.
    jpeg_p: float = 0.1
    jpeg_quality_min: int = 30
    jpeg_quality_max: int = 100
    blur_p: float = 0.1
    blur_sigma_max: float = 3.0
    # Additive Gaussian noise, sigma drawn in [0, noise_sigma_max] grey levels (of 255) per image, after blur and
    # before JPEG, as a camera adds it before compression. Off in both recipes (docs/results.md, section 25).
    noise_p: float = 0.0
    noise_sigma_max: float = 10.0
    # Class-conditional: each real face softened, each fake one sharpened, with this probability, so that sharpness
    # stops telling the classes apart (data/sharpness.py; docs/results.md, section 18). Off in both recipes.
    balance_sharpness_p: float = 0.0

    def __post_init__(self) -> None:
        for name in (field.name for field in fields(self) if field.name.endswith("_p")):  # the probabilities
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} = {value}: a probability must be in [0, 1]")
        if not 1 <= self.jpeg_quality_min <= self.jpeg_quality_max <= 100:
            raise ValueError(
                f"augment.jpeg_quality_min/max = {self.jpeg_quality_min}/{self.jpeg_quality_max}: "
                "expected 1 <= min <= max <= 100"
            )
        if not 0.0 < self.resized_crop_min_scale <= 1.0:
            raise ValueError(f"augment.resized_crop_min_scale = {self.resized_crop_min_scale}: expected (0, 1]")
        if self.blur_sigma_max <= 0.1 or self.rotation_degrees < 0 or self.color_jitter_strength < 0:
            raise ValueError("augment: blur_sigma_max must exceed 0.1; rotation and jitter must be >= 0")
        if self.noise_sigma_max <= 0:
            raise ValueError(f"augment.noise_sigma_max = {self.noise_sigma_max}: expected > 0 grey levels")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls(hflip_p=0.0, rotation_p=0.0, color_jitter_p=0.0, resized_crop_p=0.0, jpeg_p=0.0, blur_p=0.0)
