"""A synthetic real-vs-fake face set for the demo and the tests (no download, a few seconds to make).

"Real" images are rendered at full resolution with per-pixel sensor noise. "Fake" images come from the
same renderer at half resolution, then go through a 2x transposed-convolution upsampler whose kernel
weights its four output phases unequally: the periodic checkerboard trace that GAN and diffusion
upsamplers leave (Odena et al. 2016; Zhang et al. 2019), which a detector can learn. Content alone
does not separate the classes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_SPLITS = {"Train": 600, "Validation": 200, "Test": 200}


def _pink_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Three channels of 1/f noise in [0, 1], like the spectrum of natural images."""
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / size)
    phase = rng.uniform(0, 2 * np.pi, (3, size, size))
    noise = np.real(np.fft.ifft2(amplitude * np.exp(1j * phase)))
    noise -= noise.min(axis=(1, 2), keepdims=True)
    noise /= noise.max(axis=(1, 2), keepdims=True) + 1e-9
    return np.moveaxis(noise, 0, -1)


def render_face(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cartoon face (skin ellipse, eyes, mouth) on a textured background; float HxWx3 in [0, 1]."""
    image = 0.35 + 0.4 * _pink_noise(rng, size) * rng.uniform(0.3, 1.0, 3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = 0.5 + rng.normal(0, 0.04, 2)
    ry, rx = rng.uniform(0.32, 0.42), rng.uniform(0.24, 0.32)
    face = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    skin = np.array([rng.uniform(0.55, 0.95), rng.uniform(0.4, 0.75), rng.uniform(0.3, 0.6)])
    shading = 1 - 0.25 * ((xx - cx + 0.1) ** 2 + (yy - cy + 0.1) ** 2)
    image[face] = (skin * shading[..., None])[face]
    eye_y, eye_dx = cy - ry * rng.uniform(0.15, 0.3), rx * rng.uniform(0.35, 0.5)
    eye_r = rng.uniform(0.03, 0.05)
    for side in (-1, 1):
        eye = (yy - eye_y) ** 2 + (xx - cx - side * eye_dx) ** 2 <= eye_r**2
        image[eye] = rng.uniform(0.0, 0.25, 3)
    mouth = ((yy - cy - ry * 0.5) / 0.03) ** 2 + ((xx - cx) / (rx * rng.uniform(0.3, 0.6))) ** 2 <= 1
    image[mouth] = np.array([0.5, 0.15, 0.15]) * rng.uniform(0.6, 1.0)
    return np.clip(image, 0, 1)


BILINEAR_KERNEL = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
"""The 3x3 transposed-convolution kernel whose four phases sum equally: plain bilinear 2x up-sampling."""


def checkerboard_kernel(rng: np.random.Generator) -> np.ndarray:
    """A 3x3 transposed-convolution kernel whose phases sum unequally (1, 2 x edge, 4 x corner): a checkerboard."""
    corner, edge = rng.uniform(0.2, 0.3), rng.uniform(0.45, 0.6)
    return np.array([[corner, edge, corner], [edge, 1.0, edge], [corner, edge, corner]])


def upsample_with(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2x up-sampling of a float (H, W, 3) image by zero insertion and a 3x3 kernel (a stride-2 transposed
    convolution)."""
    height, width, _ = image.shape
    sparse = np.zeros((2 * height, 2 * width, 3))
    sparse[::2, ::2] = image
    padded = np.pad(sparse, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    out = np.zeros_like(sparse)
    for dy in range(3):
        for dx in range(3):
            out += kernel[dy, dx] * padded[dy : dy + 2 * height, dx : dx + 2 * width]
    return out


def transposed_conv_upsample(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """2x upsampling by zero insertion and a 3x3 kernel whose phases sum unequally (checkerboard)."""
    return upsample_with(image, checkerboard_kernel(rng))


def make_image(rng: np.random.Generator, size: int, fake: bool) -> Image.Image:
    """One synthetic image of the given class."""
    if fake:
        low = render_face(rng, size // 2) + rng.normal(0, 0.02, (size // 2, size // 2, 3))
        pixels = transposed_conv_upsample(low, rng)
    else:
        pixels = render_face(rng, size) + rng.normal(0, 0.02, (size, size, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8), mode="RGB")


def make_synthetic_dataset(
    root: Path, splits: dict[str, int] | None = None, image_size: int = 64, seed: int = 0, quality: int = 95
) -> Path:
    """Write root/{Train,Validation,Test}/{Real,Fake}/*.jpg, half of each split per class."""
    rng = np.random.default_rng(seed)
    for split, count in (splits or DEFAULT_SPLITS).items():
        for class_name in ("Real", "Fake"):
            folder = root / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count // 2):
                image = make_image(rng, image_size, fake=class_name == "Fake")
                image.save(folder / f"{class_name.lower()}_{index:05d}.jpg", quality=quality)
    logger.info("wrote a synthetic dataset to %s", root)
    return root
