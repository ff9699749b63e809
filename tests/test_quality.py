import numpy as np
import pytest
from PIL import Image

from dfdetect.quality import noise_sigma


def smooth(size: int = 96) -> np.ndarray:
    """A smooth RGB gradient: next to no noise-like detail."""
    y, x = np.mgrid[0:size, 0:size] / size
    return (np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20).round().astype(np.uint8)


@pytest.mark.parametrize("sigma", [1.0, 3.0, 8.0])
def test_white_noise_is_measured_in_grey_levels(sigma: float) -> None:
    noisy = smooth() + np.random.default_rng(0).normal(0, sigma, (96, 96, 3))
    estimate = noise_sigma(np.clip(noisy, 0, 255).round().astype(np.uint8))
    assert estimate == pytest.approx(sigma, rel=0.1)


def test_smooth_images_measure_low_and_pil_matches_arrays() -> None:
    image = smooth()
    assert noise_sigma(image) < 0.5
    assert noise_sigma(Image.fromarray(image)) == noise_sigma(image)


def test_resizing_to_the_input_size_averages_noise_away() -> None:
    noisy = np.clip(smooth(192) + np.random.default_rng(1).normal(0, 6, (192, 192, 3)), 0, 255).astype(np.uint8)
    full, half = noise_sigma(noisy), noise_sigma(noisy, size=96)
    assert half < 0.75 * full  # as the network sees it: downscaling by 2 averages pixels


def test_too_small_an_image_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 3x3"):
        noise_sigma(np.zeros((2, 5, 3), dtype=np.uint8))
