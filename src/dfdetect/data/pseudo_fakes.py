"""Pseudo-fakes: fake-labelled images made from real face crops on the fly, so a detector learns the traces every
forgery leaves rather than one generator's look (`dfdetect train --pseudo-fakes sbi,upsample`).

- `sbi`, self-blending (after Shiohara & Yamasaki, CVPR 2022): the face is blended with a copy of itself whose
  colour, sharpness and geometry were jittered, through a soft face-shaped mask (an ellipse over the face's
  central region, randomly deformed and blurred), at a random blend ratio; the result carries a blending
  boundary and a statistical mismatch inside it, as a face swap does. `sbi-landmarks` places the mask by the
  face's five MTCNN landmarks instead: an inner-face outline that follows the face's size, place and roll
  (the ellipse where no face is found).
- `upsample`, generator traces (after Zhang, Karaman & Chang 2019, AutoGAN): the face is downsampled by 2 and
  brought back by a transposed-convolution upsampler whose kernel phases sum unequally, which leaves the
  periodic (checkerboard) spectrum peaks that whole-face generators leave. `upsample-sharp` adds only that
  periodic trace to the face at its own resolution, so the pseudo-fake is not softer than the real.
- `autoencoder`, generator traces from a trained decoder (AutoGAN's own method): the face rebuilt by a small
  auto-encoder trained on real faces only, once per run (data/autoencoder.py); the trainer passes it in.
  `autoencoder-sharp` sharpens each reconstruction back to its real face's sharpness.

Every maker takes an RGB uint8 (H, W, 3) array and a numpy Generator and returns an array of the same shape and
dtype: given the same generator state, the same output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np

from dfdetect.data.sharpness import detail
from dfdetect.data.synthetic import BILINEAR_KERNEL, checkerboard_kernel, transposed_conv_upsample, upsample_with
from dfdetect.errors import ConfigError

Maker = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def face_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A soft face-shaped mask in [0, 1]: an ellipse over the crop's central face region (the DFDC crops put the
    face in the middle with a margin), jittered in size, place and angle, warped, then blurred."""
    height, width = shape
    mask = np.zeros((height, width), dtype=np.float32)
    centre = (int(width * rng.uniform(0.45, 0.55)), int(height * rng.uniform(0.48, 0.58)))
    axes = (int(width * rng.uniform(0.24, 0.33)), int(height * rng.uniform(0.3, 0.4)))
    cv2.ellipse(mask, centre, axes, float(rng.uniform(-12, 12)), 0, 360, 1.0, thickness=-1)
    return deform(mask, rng)


INNER_FACE = np.array(
    [
        (-0.75, -0.45), (-0.35, -0.6), (0.35, -0.6), (0.75, -0.45), (0.85, 0.3), (0.7, 1.0),
        (0.35, 1.35), (0.0, 1.45), (-0.35, 1.35), (-0.7, 1.0), (-0.85, 0.3),
    ],
    dtype=np.float32,
)  # fmt: skip
"""The outline of the inner face (brows, cheeks, jaw, chin) in the face's own frame: x in inter-ocular
distances from the eyes' midpoint (along the eye line), y in eye-to-mouth distances (down the face). It spans
what a face swap replaces, as the convex hull of 68 landmarks does in the self-blending paper."""


def landmark_mask(shape: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft mask over the inner face, placed by five landmarks (eyes, nose, mouth corners, as MTCNN gives
    them): it follows the face's size, place and roll in the crop. Width and height are jittered and the
    outline is scaled about its centre (0.7-1.05), then warped and blurred like face_mask's."""
    left_eye, right_eye, _, mouth_left, mouth_right = np.asarray(landmarks, dtype=np.float32)
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    across, down = (right_eye - left_eye) * rng.uniform(0.85, 1.15), (mouth - eyes) * rng.uniform(0.85, 1.15)
    outline = eyes + INNER_FACE[:, :1] * across + INNER_FACE[:, 1:] * down
    centre = outline.mean(axis=0)
    outline = centre + (outline - centre) * rng.uniform(0.7, 1.05)
    mask = np.zeros(shape, dtype=np.float32)
    cv2.fillConvexPoly(mask, np.rint(outline).astype(np.int32), 1.0)
    return deform(mask, rng)


def deform(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An elastic-like warp (a smooth random displacement field deforms the outline), then a random blur."""
    height, width = mask.shape
    grid = max(2, min(height, width) // 32)
    shift = rng.normal(0, 0.03 * min(height, width), (2, grid, grid)).astype(np.float32)
    flow_x = cv2.resize(shift[0], (width, height), interpolation=cv2.INTER_CUBIC)
    flow_y = cv2.resize(shift[1], (width, height), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    warped = cv2.remap(mask, xs + flow_x, ys + flow_y, interpolation=cv2.INTER_LINEAR)
    kernel = 2 * int(rng.integers(2, max(3, min(height, width) // 12))) + 1
    return np.asarray(cv2.GaussianBlur(warped, (kernel, kernel), 0), dtype=np.float32)


def face_landmarks(image: np.ndarray) -> np.ndarray | None:
    """The five (x, y) landmarks of the largest face MTCNN finds in a face crop, or None. Faces smaller than a
    quarter of the crop are not looked for (a crop's face fills most of it; this keeps MTCNN near 15 ms)."""
    from dfdetect.mtcnn import shared_detector

    detections = shared_detector(max(20, min(image.shape[:2]) // 4)).detect(image)
    if not detections:
        return None
    largest = max(detections, key=lambda found: found.box[2] - found.box[0])
    return np.asarray(largest.landmarks, dtype=np.float32)


def jitter_source(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The blended-in copy: colour (hue, saturation, brightness, contrast), sharpness and a small shift/scale."""
    height, width = image.shape[:2]
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
    hsv[..., 1] *= rng.uniform(0.85, 1.15)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    out = (out - out.mean()) * rng.uniform(0.9, 1.1) + out.mean() + rng.uniform(-12, 12)
    if rng.random() < 0.5:  # a different sharpness (frequency content) inside the blend
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.6, 1.4)))
    else:
        out = out + rng.uniform(0.3, 0.8) * detail(out, 1.0)
    scale = rng.uniform(0.96, 1.04)
    shift = rng.uniform(-0.03, 0.03, 2) * (width, height)
    matrix = np.array([[scale, 0, (1 - scale) * width / 2 + shift[0]], [0, scale, (1 - scale) * height / 2 + shift[1]]])
    moved = cv2.warpAffine(
        np.clip(out, 0, 255), matrix.astype(np.float32), (width, height), borderMode=cv2.BORDER_REFLECT
    )
    return np.clip(moved, 0, 255)


def self_blend(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A self-blended image: the jittered copy blended in through an ellipse face mask at a random ratio."""
    return blend(image, rng)[0]


def self_blend_landmarks(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A self-blended image whose mask is placed by the face's landmarks (MTCNN); the ellipse where no face
    is found. (In training, make_pseudo_fake takes landmarks found once per file instead.)"""
    return blend(image, rng, face_landmarks(image))[0]


def blend(
    image: np.ndarray, rng: np.random.Generator, landmarks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The self-blended image and the mask it used (blend ratio included): an ellipse, or the inner-face outline
    placed by `landmarks` when given."""
    shape = image.shape[:2]
    outline = face_mask(shape, rng) if landmarks is None else landmark_mask(shape, landmarks, rng)
    mask = outline * rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    source = jitter_source(image, rng)
    blended = mask[..., None] * source + (1 - mask[..., None]) * image.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8), mask


def half_size(image: np.ndarray) -> np.ndarray:
    """The face brought down 2x by area averaging, as floats in [0, 1]: what the up-sampling makers start from."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)
    return small.astype(np.float64) / 255.0


def upsample_trace(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face passed through a 2x transposed-convolution upsampler after a 2x downsampling."""
    height, width = image.shape[:2]
    upsampled = transposed_conv_upsample(half_size(image), rng)
    upsampled = cv2.resize(upsampled, (width, height), interpolation=cv2.INTER_NEAREST)  # odd sizes
    return np.clip(upsampled * 255 + 0.5, 0, 255).astype(np.uint8)


def upsample_trace_sharp(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The up-sampling trace alone, added to the face at its own resolution: what a checkerboard up-sampler of
    the half-size face adds beyond plain bilinear up-sampling of it, scaled by a random strength (0.25-1). The
    face keeps its own detail, so unlike `upsample` (a half-resolution face, softer than the real it came from)
    this pseudo-fake does not teach that the softer face is the fake one (docs/results.md, section 21)."""
    height, width = image.shape[:2]
    small = half_size(image)
    trace = upsample_with(small, checkerboard_kernel(rng)) - upsample_with(small, BILINEAR_KERNEL)
    trace = cv2.resize(trace * rng.uniform(0.25, 1.0), (width, height), interpolation=cv2.INTER_NEAREST)
    return np.clip(image + trace * 255 + 0.5, 0, 255).astype(np.uint8)


MAKERS: dict[str, Maker] = {
    "sbi": self_blend,
    "sbi-landmarks": self_blend_landmarks,
    "upsample": upsample_trace,
    "upsample-sharp": upsample_trace_sharp,
}
TRAINED = ("autoencoder", "autoencoder-sharp")
"""Makers that need a network trained before the first epoch (make_pseudo_fake's `trained`)."""


def parse_makers(names: str) -> list[str]:
    """`sbi,upsample` -> ['sbi', 'upsample']; '' -> []; unknown names are an error that lists the known ones."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in MAKERS and name not in TRAINED]
    if unknown:
        raise ConfigError(f"unknown pseudo-fake(s) {', '.join(unknown)}; known: {', '.join([*MAKERS, *TRAINED])}")
    return chosen


def make_pseudo_fake(
    image: np.ndarray,
    makers: Sequence[str],
    rng: np.random.Generator,
    locate: Callable[[np.ndarray], np.ndarray | None] | None = None,
    trained: Mapping[str, Maker] | None = None,
) -> np.ndarray:
    """One of `makers`, drawn with `rng`, applied to a real face. `locate` gives `sbi-landmarks` the face's five
    landmarks (or None): MTCNN by default, a lookup in landmarks found once before training in the trainer
    (data/landmarks.py); either way the same generator state gives the same image. `trained` holds the makers of
    TRAINED by name (data.autoencoder.Reconstructor), which have no default."""
    name = makers[int(rng.integers(len(makers)))]
    if name in TRAINED:
        if trained is None or name not in trained:
            raise ConfigError(f"the {name} pseudo-fake needs a trained auto-encoder (the trainer trains one)")
        return trained[name](image, rng)
    if name == "sbi-landmarks":
        return blend(image, rng, (locate or face_landmarks)(image))[0]
    return MAKERS[name](image, rng)
