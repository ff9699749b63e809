"""NoiseRouter: the primary's logit for ordinary inputs, the fallback's (on its own input size and scale) for noisy
ones, decided by the noise estimate `predict` reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from dfdetect.calibration import threshold_logit
from dfdetect.data.transforms import build_eval_transform
from dfdetect.errors import ConfigError
from dfdetect.models import create_model
from dfdetect.models.router import NoiseRouter, aligned_logit, build_detector, estimated_noise, resize_matrix
from dfdetect.preprocessing import Preprocessing
from dfdetect.quality import noise_sigma


def smooth(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return (np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20).round().astype(np.uint8)


def noisy(size: int, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, (size, size, 3))
    return np.clip(smooth(size) + noise, 0, 255).round().astype(np.uint8)


def pair():  # type: ignore[no-untyped-def]
    """A 48 px primary and a 32 px fallback with another normalisation, both untrained but seeded."""
    torch.manual_seed(0)
    primary = create_model("own_cnn", dropout=0.2, image_size=48).eval()
    fallback = create_model("own_cnn", dropout=0.2, image_size=32).eval()
    primary.preprocessing = Preprocessing(input_size=48, interpolation="bicubic")
    fallback.preprocessing = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return primary, fallback


@pytest.mark.parametrize(("size_in", "size_out", "interpolation"), [(48, 32, "bilinear"), (224, 128, "bicubic")])
def test_the_resize_matrix_resizes_as_pillow_does(size_in: int, size_out: int, interpolation: str) -> None:
    image = noisy(size_in, 20.0)
    matrix = resize_matrix(size_in, size_out, interpolation)
    pixels = torch.from_numpy(image).permute(2, 0, 1).float()
    got = (matrix @ pixels @ matrix.T).permute(1, 2, 0).numpy()
    resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
    expected = np.asarray(Image.fromarray(image).resize((size_out, size_out), resample), dtype=np.float32)
    error = np.abs(np.clip(got.round(), 0, 255) - expected)
    assert error.max() <= 2 and error.mean() < 0.3  # Pillow's 8-bit path rounds between its two passes
    assert matrix.sum(1) == pytest.approx(torch.ones(size_out), abs=1e-5)


@pytest.mark.parametrize("sigma", [0.0, 1.0, 4.0])
def test_the_noise_estimate_is_the_one_predict_reports(sigma: float) -> None:
    image = noisy(40, sigma)
    pixels = torch.from_numpy(image).permute(2, 0, 1).float()[None]
    assert estimated_noise(pixels).item() == pytest.approx(noise_sigma(image), rel=1e-5, abs=1e-6)


def test_aligned_logits_put_the_fallbacks_threshold_on_the_primarys() -> None:
    primary, fallback = {"temperature": 1.6, "threshold": 0.53}, {"temperature": 1.3, "threshold": 0.49}
    scale, shift = aligned_logit(primary, fallback)
    at_threshold = threshold_logit(0.49) * 1.3  # the fallback's own logit at its calibrated threshold
    assert (scale * at_threshold + shift) / 1.6 == pytest.approx(threshold_logit(0.53))
    assert aligned_logit(None, None) == (1.0, 0.0)
    assert aligned_logit(primary, primary) == pytest.approx((1.0, 0.0))


def test_clean_inputs_get_the_primarys_logit_and_noisy_ones_the_fallbacks() -> None:
    primary, fallback = pair()
    router = NoiseRouter(primary, fallback, noise_limit=1.0, scale=2.0, shift=-0.5).eval()
    images = [Image.fromarray(smooth(48)), Image.fromarray(noisy(48, 6.0))]
    batch = torch.stack([build_eval_transform(primary.preprocessing)(image) for image in images])
    own = torch.stack([build_eval_transform(fallback.preprocessing)(image) for image in images])
    with torch.no_grad():
        got = router(batch)
        first = primary(batch)
        second = fallback(own) * 2.0 - 0.5
        noise = router.noise(batch)
    assert noise[0] < 1.0 < noise[1]
    assert noise[1].item() == pytest.approx(noise_sigma(images[1], 48, Image.Resampling.BICUBIC), rel=1e-4)
    assert got[0].item() == pytest.approx(first[0].item(), abs=1e-6)
    assert got[1].item() == pytest.approx(second[1].item(), abs=0.05)  # the fallback, on its own preprocessing
    assert not math.isclose(got[1].item(), first[1].item(), abs_tol=0.05)  # ...not the primary


def test_a_router_rebuilds_from_its_metadata_and_refuses_a_bad_limit() -> None:
    primary, fallback = pair()
    router = NoiseRouter(primary, fallback, noise_limit=2.5, scale=1.5, shift=0.25)
    spec = {
        "noise_limit": 2.5,
        "scale": 1.5,
        "shift": 0.25,
        "primary": {"model": "own_cnn", "preprocessing": primary.preprocessing.to_dict(), "config": {"dropout": 0.2}},
        "fallback": {"model": "own_cnn", "preprocessing": fallback.preprocessing.to_dict()},
    }
    rebuilt = build_detector({"model": "routed", "routed": spec, "preprocessing": primary.preprocessing.to_dict()})
    rebuilt.load_state_dict(router.state_dict())  # the resize and normalisation buffers are not in the state
    images = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(images), router.eval()(images))
    assert rebuilt.preprocessing == primary.preprocessing and rebuilt.explained() is rebuilt.primary
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ConfigError, match="positive number of grey levels"):
            NoiseRouter(primary, fallback, noise_limit=bad)
