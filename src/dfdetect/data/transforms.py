"""Preprocessing specs that travel with models, and the train / eval transform pipelines built from them."""

from __future__ import annotations

import math

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from dfdetect.preprocessing import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, Preprocessing

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AugmentConfig",
    "Preprocessing",
    "build_eval_transform",
    "build_train_transform",
]


def _finish(preprocessing: Preprocessing) -> list[v2.Transform]:
    return [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)),
    ]


def interpolation_mode(preprocessing: Preprocessing) -> InterpolationMode:
    return InterpolationMode(preprocessing.interpolation)


class GaussianNoise(torch.nn.Module):
    """Add Gaussian noise of a random sigma in [0, sigma_max] grey levels to a uint8 image."""

    def __init__(self, sigma_max: float) -> None:
        super().__init__()
        self.sigma_max = sigma_max

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        sigma = float(torch.rand(())) * self.sigma_max
        noisy = (image.float() + sigma * torch.randn(image.shape)).round().clamp(0, 255).to(torch.uint8)
        return tv_tensors.wrap(noisy, like=image) if isinstance(image, tv_tensors.Image) else noisy

    def extra_repr(self) -> str:
        return f"sigma_max={self.sigma_max}"


def build_eval_transform(preprocessing: Preprocessing) -> v2.Compose:
    """PIL RGB image -> normalised float tensor of the model's input size; no randomness."""
    size = preprocessing.input_size
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((size, size), interpolation=interpolation_mode(preprocessing), antialias=True),
            *_finish(preprocessing),
        ]
    )


def build_train_transform(preprocessing: Preprocessing, augment: AugmentConfig) -> v2.Compose:
    """Eval pipeline plus the configured augmentations (on uint8 tensors, before normalisation)."""
    size = preprocessing.input_size
    interpolation = interpolation_mode(preprocessing)
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
    if augment.noise_p > 0:
        steps.append(v2.RandomApply([GaussianNoise(augment.noise_sigma_max)], p=augment.noise_p))
    if augment.jpeg_p > 0:
        jpeg = v2.JPEG(quality=(augment.jpeg_quality_min, augment.jpeg_quality_max))
        steps.append(v2.RandomApply([jpeg], p=augment.jpeg_p))
    return v2.Compose(steps + _finish(preprocessing))
