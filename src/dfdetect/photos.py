"""Photos with several faces (`predict --crop-face`): every face above a size is scored, and the most fake face
decides the photo's verdict (a swapped face among real ones makes the photo a fake)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from dfdetect.data.images import load_rgb
from dfdetect.errors import DfdetectError
from dfdetect.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, Face, crop_face, detect_faces
from dfdetect.runtime.base import BasePredictor

logger = logging.getLogger(__name__)

DEFAULT_MIN_FACE = 32
"""Faces smaller than this many pixels across are not scored: the models saw 128-224 px faces."""


@dataclass(frozen=True)
class FaceScore:
    """One face of a photo: its index (largest first), box and p_fake."""

    face: int
    box: tuple[float, float, float, float]
    p_fake: float


@dataclass
class PhotoPrediction:
    """A photo's verdict row (that of its most fake face) and every face's score."""

    row: dict[str, Any]
    faces: list[FaceScore] = field(default_factory=list)


def box_text(box: Sequence[float]) -> str:
    return " ".join(f"{value:.0f}" for value in box)


def predict_photo(
    predictor: BasePredictor,
    path: Path,
    detector: str = DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    min_face: int = DEFAULT_MIN_FACE,
) -> PhotoPrediction:
    """Find, crop and score every face of one photo; an unreadable photo or one without a face is an error row."""
    try:
        image = load_rgb(path)
    except FileNotFoundError:
        return PhotoPrediction(error_row(predictor, path, f"{path}: no such file"))
    except (DfdetectError, OSError) as error:
        return PhotoPrediction(error_row(predictor, path, str(error)))
    faces = detect_faces(image, detector, min_size=min_face)
    if not faces:
        return PhotoPrediction(error_row(predictor, path, f"{path}: no face found (--crop-face)"))
    p_real = predictor.predict_images([crop_face(image, face, margin) for face in faces])
    scores = [
        FaceScore(index, face.box, float(1 - p)) for index, (face, p) in enumerate(zip(faces, p_real, strict=True))
    ]
    worst = int(np.argmin(p_real))
    row = {
        **predictor.prediction(str(path), float(p_real[worst])).to_dict(),
        "faces_found": len(faces),
        "face": worst,
        "box": box_text(faces[worst].box),
    }
    return PhotoPrediction(row, scores)


def error_row(predictor: BasePredictor, path: Path, message: str) -> dict[str, Any]:
    logger.warning("cannot score %s: %s", path, message)
    return {**predictor.failure(str(path), message).to_dict(), "faces_found": 0}


def draw_faces(image: Image.Image, faces: Sequence[FaceScore], threshold_fake: float) -> Image.Image:
    """Each face's box with its verdict and p_fake written above it (red: fake, green: real)."""
    drawn = image.convert("RGB").copy()
    canvas = ImageDraw.Draw(drawn)
    width = max(2, round(min(image.size) / 200))
    for face in faces:
        fake = face.p_fake > threshold_fake
        colour = (220, 40, 40) if fake else (40, 180, 70)
        canvas.rectangle(face.box, outline=colour, width=width)
        text = f"#{face.face} {'fake' if fake else 'real'} {face.p_fake:.2f}"
        canvas.text((face.box[0] + width, max(0, face.box[1] - 12)), text, fill=colour)
    return drawn


def face_as_detected(face: FaceScore) -> Face:
    return Face(face.box, 1.0)
