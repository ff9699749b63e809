"""Sharpness balancing: a training augmentation that stops a face's sharpness from telling the classes apart.

In DFDC the swapped face is rendered at a lower resolution and blended in, so fakes are a little softer than reals
(a sharpness measure alone ranks DFDC Validation at 0.60 AUC), and a detector trained there learns that the sharper
face is the real one. Other sources break that rule both ways: a real photo whose small face is blown up to the
model's input comes out soft, and a whole-face generator's output, downscaled, comes out sharper than the real
photos beside it (docs/results.md, section 18). With `augment.balance_sharpness_p = p`, each real training face is
softened (brought down to a lower resolution and back up, as a small face blown up would be) and each fake face
sharpened (unsharp masking) with probability p, so the network has to find other traces.

Class-conditional, so it runs on decoded images in the DataLoader workers (FaceDataset), like the pseudo-fakes.
"""

from __future__ import annotations

import cv2
import numpy as np

SOFTEN_FACTOR = (1.5, 3.0)
"""The softened face goes down to 1/f of its side, f drawn from this range, and back up."""
SHARPEN_SIGMA = (0.8, 2.0)
SHARPEN_AMOUNT = (0.5, 1.5)
"""Unsharp masking: image + amount x (image - Gaussian blur of image with sigma), both drawn from these ranges."""


def soften(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image at a lower resolution, brought back to its size (area down, bicubic up)."""
    height, width = image.shape[:2]
    factor = rng.uniform(*SOFTEN_FACTOR)
    small = cv2.resize(
        image, (max(1, round(width / factor)), max(1, round(height / factor))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def detail(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """What unsharp masking adds to float pixels, per unit of amount: the pixels less their Gaussian blur."""
    return pixels - cv2.GaussianBlur(pixels, (0, 0), sigma)


def unsharp(pixels: np.ndarray, added: np.ndarray, amount: float) -> np.ndarray:
    """Float pixels plus `amount` times `added` (their `detail`), rounded back to uint8."""
    return np.clip(np.rint(pixels + amount * added), 0, 255).astype(np.uint8)


def sharpen(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unsharp masking at a random radius and amount."""
    pixels = image.astype(np.float32)
    sigma = float(rng.uniform(*SHARPEN_SIGMA))
    return unsharp(pixels, detail(pixels, sigma), rng.uniform(*SHARPEN_AMOUNT))


MATCH_SIGMA = 1.0
"""The Gaussian radius of the unsharp masking that match_sharpness applies."""


def match_sharpness(image: np.ndarray, reference: np.ndarray, steps: int = 12) -> np.ndarray:
    """`image` sharpened by unsharp masking (radius MATCH_SIGMA) until its Laplacian variance reaches `reference`'s
    (bisection on the amount, up to 8); an image already as sharp is returned as it is."""
    target = laplacian_variance(reference)
    if laplacian_variance(image) >= target:
        return image
    pixels = image.astype(np.float32)
    added = detail(pixels, MATCH_SIGMA)
    low, high = 0.0, 8.0
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (middle, high) if laplacian_variance(unsharp(pixels, added, middle)) < target else (low, middle)
    return unsharp(pixels, added, high)


def balance_sharpness(image: np.ndarray, label: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """With probability `p`, a real face (label 1) softened or a fake one (label 0) sharpened; else the image as it
    is. RGB uint8 (H, W, 3) in and out; the same generator state gives the same image."""
    if p <= 0 or rng.random() >= p:
        return image
    return soften(image, rng) if label == 1 else sharpen(image, rng)


def laplacian_variance(image: np.ndarray) -> float:
    """A sharpness measure: the variance of the grey image's Laplacian (higher is sharper)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())
