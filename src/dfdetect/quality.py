"""How noisy and how small an input is, as the network sees it: cues for when a detector's score deserves less
trust.

Detectors that learned up-sampling traces read fine noise as a trace of a generator: Gaussian noise of one grey
level takes the default detector's accuracy on DFDC Validation from 0.893 to 0.656 at its threshold (two: 0.569;
0.615 and 0.541 at 3.0.0's `eer`), most real faces then called fake (docs/results.md sections 28 and 36,
bench/noise_caution.py). `noise_sigma` estimates an image's noise with Immerkær's fast method ("Fast noise variance
estimation", Computer Vision and Image Understanding 64(2), 1996): the mean absolute response to a 3x3
Laplacian-difference mask that cancels smooth image content, scaled to the standard deviation of white Gaussian
noise, per RGB channel, averaged. Texture and sharp edges raise the estimate too, so it measures "noise-like fine
detail", which is what the networks react to.

`predict`, the Python API and `serve` report it for every image or face they score (`noise`; a video's is the
median of its faces'), and flag the score (`caution`) when it exceeds the limit measured for the default detector
(`NOISE_CAUTION`), or when what was scored is smaller than the shipped detectors were measured reliable down to
(`SMALL_CAUTION`: a tiny image or face, brought up to the network's input, carries little detail to read). Each
result says why in words (`caution`) and in codes a program can test (`caution_codes`: `small`, `noisy`).
`dfdetect route` (dfdetect.models.router) acts on the noise: noisier inputs go to a noise-robust network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from dfdetect.errors import ConfigError

NOISE_CAUTION = 1.0
"""Estimated noise (grey levels, at the network's input size) from which on the default detector's accuracy on
DFDC Validation lies more than 0.05 below its clean accuracy (docs/results.md section 28; clean DFDC faces measure
0.26-0.69): `predict`, `serve` and the Python API flag the scores of noisier inputs."""

SMALL_CAUTION = 48
"""Shorter side (pixels, of the image or of the face cut from it, before the network's resize) below which a score
deserves a caution. DFDC Validation's faces brought down to 48 px cost the default detector (224 px input) 0.039 of
its full-size accuracy and to 40 px 0.055, and cost `dfdc-lite0` (128 px input) 0.051 and 0.071: what breaks is how
many pixels the face has, not how far the resize brings it up (docs/results.md section 32, bench/small_inputs.py).
`predict`, `serve` and the Python API flag the scores of smaller inputs; a network whose own input is smaller only
those below its input size (`small_limit`)."""


SMALL, NOISY = "small", "noisy"
"""The codes of the two cautions (`caution_codes` in every result), for programs that act on them."""


class Caution(NamedTuple):
    """One reason a score deserves less trust: its code (`SMALL` or `NOISY`) and the sentence people read."""

    code: str
    text: str


def caution_fields(cautions: Sequence[Caution]) -> dict[str, Any]:
    """A result's `caution` (its cautions' sentences joined by "; ", or None when there is none) and
    `caution_codes` (in the same order), as keyword arguments of every result type."""
    return {
        "caution": "; ".join(caution.text for caution in cautions) or None,
        "caution_codes": [caution.code for caution in cautions],
    }


def check_small_caution(pixels: int | None) -> None:
    """A user's small-input limit: None (keep the detector's) or pixels >= 0 (0 turns the caution off)."""
    if pixels is not None and not pixels >= 0:
        raise ConfigError(f"small caution {pixels}: give pixels >= 0 (0 turns the caution off)")


def small_limit(caution: int, input_size: int) -> int:
    """The shorter side below which a network with `input_size` px inputs flags a score: the caution's, or its own
    input size when that is smaller (an input as large as the network's own has lost nothing to the resize)."""
    return min(caution, input_size)


_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
NOISE_SCALE = math.sqrt(math.pi / 2) / 6
"""Mean absolute mask response -> sigma: E|N(0, s^2) * mask| = s * sqrt(36) * sqrt(2 / pi)."""


def noise_sigma(
    image: Image.Image | np.ndarray,
    size: int | None = None,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> float:
    """Estimated standard deviation (grey levels, 0-255) of white noise in an RGB image (PIL or HxWx3 uint8),
    after resizing it to `size` x `size` with `resample`, as the network's preprocessing does, if given."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    rgb = image.convert("RGB")
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), resample)
    if min(rgb.size) < 3:
        raise ValueError(f"noise_sigma needs an image at least 3x3 pixels, got {rgb.width}x{rgb.height}")
    pixels = np.asarray(rgb, dtype=np.float32)
    import cv2  # imported here: `import dfdetect` stays light

    response = cv2.filter2D(pixels, -1, _MASK, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.abs(response).mean() * NOISE_SCALE)
