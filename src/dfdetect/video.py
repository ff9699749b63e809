"""Videos: frames evenly spaced through a clip (PyAV, whose wheel carries FFmpeg), the face followed from frame to
frame, each frame's face scored, and one verdict per video.

Aggregation of the frames' scores (`--aggregate`):
- `mean` (default): the mean of the frames' logits, turned back into a probability;
- `max`: the most fake frame decides;
- `confident`: the DFDC winner's rule (Seferbekov 2020): when at least 11 frames (or a quarter of them, if fewer
  were read) are confidently fake (p_fake > 0.8), the mean of those; else when 90% are confidently real
  (p_fake < 0.2), the mean of those; else the mean of all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dfdetect.calibration import logit, sigmoid
from dfdetect.data.images import VIDEO_EXTENSIONS
from dfdetect.errors import ImageLoadError
from dfdetect.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, Face, crop_face, detect_faces
from dfdetect.quality import Caution, caution_fields

logger = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "max", "confident")
DEFAULT_FRAMES = 32


class VideoError(ImageLoadError):
    """A video that cannot be read (missing, empty, truncated, not a video)."""


@dataclass(frozen=True)
class FrameScore:
    """One frame's result: its index and time, the face's box (None when no face) and p_fake."""

    frame: int
    seconds: float
    box: tuple[float, float, float, float] | None
    p_fake: float | None
    noise: float | None = None
    """The face's estimated noise at the network's input size, grey levels (when measured)."""


@dataclass
class VideoPrediction:
    """One video's verdict and the frames it came from."""

    path: str
    frames_read: int
    faces_found: int
    label: str | None
    p_fake: float | None
    aggregate: str
    error: str | None = None
    model: str | None = None
    noise: float | None = None
    """The median of the scored faces' estimated noise (grey levels), when measured."""
    caution: str | None = None
    """Why the verdict deserves less trust (most frames' faces noisy, or small), or None."""
    caution_codes: list[str] = field(default_factory=list)
    """The caution's reasons as codes (`small`, `noisy`; dfdetect.quality)."""
    frames: list[FrameScore] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The row of `predict`'s output (frames go to --per-frame)."""
        row = asdict(self)
        row.pop("frames")
        return row


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def read_frames(
    path: Path, count: int = DEFAULT_FRAMES, max_seconds: float = 60.0, max_decoded: int = 20_000
) -> list[tuple[int, float, np.ndarray]]:
    """`count` frames evenly spaced through the video as (index, seconds, RGB array); decoding stops after
    `max_seconds` of work or `max_decoded` frames, so no file can hold a caller. VideoError if unreadable."""
    import av

    if not path.is_file():
        raise VideoError(str(path), "no such file")
    if path.stat().st_size == 0:
        raise VideoError(str(path), "empty file")
    started = time.monotonic()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(str(path), "no video stream in the file")
            stream = container.streams.video[0]
            total = stream.frames  # 0 when the container does not say: then estimate from duration and rate
            if not total and stream.duration is not None and stream.time_base is not None:
                total = int(float(stream.duration * stream.time_base) * float(stream.average_rate or 25))
            wanted = set(np.linspace(0, max(total - 1, 0), num=count).round().astype(int).tolist()) if total else None
            frames: list[tuple[int, float, np.ndarray]] = []
            stride = 1  # frame count unknown: keep every stride-th frame, doubling it to hold at most 2 x count
            for index, frame in enumerate(container.decode(stream)):
                if (index in wanted) if wanted is not None else index % stride == 0:
                    frames.append((index, float(frame.time or 0.0), frame.to_ndarray(format="rgb24")))
                    if wanted is None and len(frames) >= 2 * count:
                        frames, stride = frames[::2], stride * 2
                if index + 1 >= max_decoded or time.monotonic() - started > max_seconds:
                    logger.warning("%s: stopped decoding after %d frames (time or frame budget)", path, index + 1)
                    break
                if wanted is not None and index >= max(wanted):
                    break
    except VideoError:
        raise
    except Exception as error:  # PyAV raises its own error types for every FFmpeg failure
        raise VideoError(str(path), f"cannot decode video ({error.__class__.__name__}: {error})") from None
    if not frames:
        raise VideoError(str(path), "no decodable frame (truncated or not a video)")
    if wanted is None and len(frames) > count:  # pick evenly from the (at most 2 x count) frames kept
        keep = np.linspace(0, len(frames) - 1, num=count).round().astype(int)
        frames = [frames[i] for i in sorted(set(keep.tolist()))]
    return frames


def track(previous: Face | None, faces: Sequence[Face]) -> Face | None:
    """The face to follow in this frame: the one overlapping the previous frame's most, else the largest."""
    if not faces:
        return None
    if previous is None:
        return faces[0]

    def overlap(face: Face) -> float:
        a, b = previous.box, face.box
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = width * height
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    best = max(faces, key=overlap)
    return best if overlap(best) > 0.1 else faces[0]


def aggregate(p_fake: Sequence[float], how: str = "mean") -> float:
    """One video p_fake from its frames' (see the module's docstring)."""
    scores = np.asarray(p_fake, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("no frame scores to aggregate")
    if how == "mean":
        return float(sigmoid(logit(scores).mean()))
    if how == "max":
        return float(scores.max())
    if how == "confident":
        fake, real = scores[scores > 0.8], scores[scores < 0.2]
        if len(fake) >= min(11, max(1, len(scores) // 4)):
            return float(fake.mean())
        if len(real) >= 0.9 * len(scores):
            return float(real.mean())
        return float(scores.mean())
    raise ValueError(f"unknown aggregation {how!r}; known: {', '.join(AGGREGATIONS)}")


def predict_video(
    path: Path,
    score: Callable[[list[Image.Image]], np.ndarray],
    label_of: Callable[[float], str],
    frames: int = DEFAULT_FRAMES,
    how: str = "mean",
    detector: str = DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    max_seconds: float = 60.0,
    name: str | None = None,
    noise: Callable[[Image.Image], float] | None = None,
    cautions_of: Callable[[float | None, int | None], list[Caution]] | None = None,
) -> VideoPrediction:
    """Read, find and follow the face, score each frame's face with `score` (images -> P(Real)), aggregate.
    `name` replaces the path in the result and its errors (an upload saved to a temporary file). With `noise`
    (image -> estimated noise, a predictor's `input_noise`), each scored face's noise is measured and the video's
    is their median (the typical frame's); `cautions_of` (a predictor's) turns it, and the median face crop's
    shorter side, into the video's caution."""
    name = name or str(path)
    try:
        decoded = read_frames(path, frames, max_seconds=max_seconds)
    except VideoError as error:
        return VideoPrediction(name, 0, 0, None, None, how, error=f"{name}: {error.reason}")
    followed: Face | None = None
    crops, results = [], []
    for index, seconds, pixels in decoded:
        image = Image.fromarray(pixels)
        face = track(followed, detect_faces(image, detector, min_size=max(20, min(image.size) // 20)))
        followed = face or followed
        results.append(FrameScore(index, seconds, face.box if face else None, None))
        if face is not None:
            crops.append((len(results) - 1, crop_face(image, face, margin)))
    if not crops:
        return VideoPrediction(
            name, len(decoded), 0, None, None, how, error=f"{name}: no face found in any frame", frames=results
        )
    p_real = score([crop for _, crop in crops])
    noises: list[float | None] = [None] * len(crops)
    typical = None
    if noise is not None:
        measured = [noise(crop) for _, crop in crops]
        noises, typical = [round(value, 2) for value in measured], round(float(np.median(measured)), 2)
    for (position, _), value, face_noise in zip(crops, p_real, noises, strict=True):
        frame = results[position]
        results[position] = FrameScore(frame.frame, frame.seconds, frame.box, float(1 - value), face_noise)
    p_fake = aggregate([1 - float(v) for v in p_real], how)
    side = int(np.median([min(crop.size) for _, crop in crops]))
    cautions = cautions_of(typical, side) if cautions_of is not None else []
    label = label_of(1 - p_fake)
    return VideoPrediction(
        name, len(decoded), len(crops), label, p_fake, how, noise=typical, frames=results, **caution_fields(cautions)
    )
