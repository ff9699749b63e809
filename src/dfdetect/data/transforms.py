"""Preprocessing specs that travel with models, and the train / eval transform pipelines built from them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torchvision.transforms import InterpolationMode, v2

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

    @property
    def interpolation_mode(self) -> InterpolationMode:
        return InterpolationMode(self.interpolation)


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

    def __post_init__(self) -> None:
        for name in ("hflip_p", "rotation_p", "color_jitter_p", "resized_crop_p", "jpeg_p", "blur_p"):
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

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls(hflip_p=0.0, rotation_p=0.0, color_jitter_p=0.0, resized_crop_p=0.0, jpeg_p=0.0, blur_p=0.0)


def _finish(preprocessing: Preprocessing) -> list[v2.Transform]:
    return [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)),
    ]


def build_eval_transform(preprocessing: Preprocessing) -> v2.Compose:
    """PIL RGB image -> normalised float tensor of the model's input size; no randomness."""
    size = preprocessing.input_size
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((size, size), interpolation=preprocessing.interpolation_mode, antialias=True),
            *_finish(preprocessing),
        ]
    )


def build_train_transform(preprocessing: Preprocessing, augment: AugmentConfig) -> v2.Compose:
    """Eval pipeline plus the configured augmentations (on uint8 tensors, before normalisation)."""
    size = preprocessing.input_size
    interpolation = preprocessing.interpolation_mode
    resize = v2.Resize((size, size), interpolation=interpolation, antialias=True)
    steps: list[v2.Transform] = [v2.ToImage()]
    if augment.resized_crop_p > 0:
        crop = v2.RandomResizedCrop(
            size, scale=(augment.resized_crop_min_scale, 1.0), interpolation=interpolation, antialias=True
        )
        steps.append(v2.RandomChoice([crop, resize], p=[augment.resized_crop_p, 1 - augment.resized_crop_p]))
    else:
        steps.append(resize)
    if augment.hflip_p > 0:
        steps.append(v2.RandomHorizontalFlip(p=augment.hflip_p))
    if augment.rotation_p > 0 and augment.rotation_degrees > 0:
        rotation = v2.RandomRotation(augment.rotation_degrees, interpolation=InterpolationMode.BILINEAR)
        steps.append(v2.RandomApply([rotation], p=augment.rotation_p))
    if augment.color_jitter_p > 0 and augment.color_jitter_strength > 0:
        strength = augment.color_jitter_strength
        jitter = v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength, hue=strength / 10)
        steps.append(v2.RandomApply([jitter], p=augment.color_jitter_p))
    if augment.blur_p > 0:
        kernel = min(2 * math.ceil(3 * augment.blur_sigma_max) + 1, size - (1 - size % 2))
        blur = v2.GaussianBlur(kernel_size=kernel, sigma=(0.1, augment.blur_sigma_max))
        steps.append(v2.RandomApply([blur], p=augment.blur_p))
    if augment.jpeg_p > 0:
        jpeg = v2.JPEG(quality=(augment.jpeg_quality_min, augment.jpeg_quality_max))
        steps.append(v2.RandomApply([jpeg], p=augment.jpeg_p))
    return v2.Compose(steps + _finish(preprocessing))
