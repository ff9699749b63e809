"""Photos with several faces (`predict --crop-face`): every face above a size is scored, and the most fake face
decides the photo's verdict (a swapped face among real ones makes the photo a fake).

`--crop-face auto` (the default) does so only for photos that show much more than a face (faces.is_loosely_framed)
and scores face crops, and images without a face, as they are; `always` cuts every photo (no face: an error row).
"""

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
from dfdetect.faces import (
    DEFAULT_DETECTOR,
    DEFAULT_MARGIN,
    Face,
    check_crop_mode,
    crop_face,
    detect_faces,
    is_loosely_framed,
)
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


def frame(
    image: Image.Image,
    mode: str = "auto",
    detector: str = DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    min_face: int = DEFAULT_MIN_FACE,
) -> tuple[list[Face], bool]:
    """The faces found in `image` (largest first) and whether they are to be cut out and scored one by one (else
    the image is scored as it is): always when there is a face in `always` mode, for loosely framed photos in
    `auto` mode, never in `never` mode."""
    faces = detect_faces(image, detector, min_size=min_face) if check_crop_mode(mode) != "never" else []
    cut = bool(faces) and (mode == "always" or is_loosely_framed(image, faces[0], margin))
    return faces, cut


def predict_photo(
    predictor: BasePredictor,
    path: Path,
    detector: str = DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    min_face: int = DEFAULT_MIN_FACE,
    mode: str = "always",
) -> PhotoPrediction:
    """Find, crop and score every face of one photo (see predict_photos)."""
    [photo] = predict_photos(predictor, [path], detector, margin, min_face, mode)
    return photo


def predict_photos(
    predictor: BasePredictor,
    paths: Sequence[Path],
    detector: str = DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    min_face: int = DEFAULT_MIN_FACE,
    mode: str = "auto",
    batch_size: int = 32,
) -> list[PhotoPrediction]:
    """One PhotoPrediction per path, in order, the faces of up to `batch_size` photos scored in one pass. An
    unreadable photo is an error row, and so is one without a face in `always` mode (`auto` scores it whole)."""
    check_crop_mode(mode)
    photos: list[PhotoPrediction] = []
    for start in range(0, len(paths), batch_size):
        photos += _predict_chunk(predictor, paths[start : start + batch_size], detector, margin, min_face, mode)
    return photos


def _predict_chunk(
    predictor: BasePredictor, paths: Sequence[Path], detector: str, margin: float, min_face: int, mode: str
) -> list[PhotoPrediction]:
    rows: dict[int, PhotoPrediction] = {}  # error rows, by photo index
    framed: dict[int, tuple[list[Face], bool]] = {}  # photo index -> faces found, whether they are cut out
    images: list[Image.Image] = []  # what is scored, photo after photo: each face's crop, or the whole image
    for index, path in enumerate(paths):
        try:
            image = load_rgb(path)
        except FileNotFoundError:
            rows[index] = PhotoPrediction(error_row(predictor, path, f"{path}: no such file"))
            continue
        except (DfdetectError, OSError) as error:
            rows[index] = PhotoPrediction(error_row(predictor, path, str(error)))
            continue
        faces, cut = frame(image, mode, detector, margin, min_face)
        if mode == "always" and not faces:
            rows[index] = PhotoPrediction(error_row(predictor, path, f"{path}: no face found (--crop-face)"))
            continue
        framed[index] = (faces, cut)
        images += [crop_face(image, face, margin) for face in faces] if cut else [image]
    scores = iter(predictor.predict_images(images) if images else [])
    for index, path in enumerate(paths):
        if index in framed:
            faces, cut = framed[index]
            p_real = np.array([next(scores) for _ in (faces if cut else [None])])
            rows[index] = photo_prediction(predictor, path, faces, p_real, cut)
    return [rows[index] for index in range(len(paths))]


def photo_prediction(
    predictor: BasePredictor, path: Path, faces: Sequence[Face], p_real: np.ndarray, cut: bool
) -> PhotoPrediction:
    """The photo's row: the most fake face's verdict when its faces were cut out, else the whole image's."""
    if not cut:
        row = {**predictor.prediction(str(path), float(p_real[0])).to_dict(), "faces_found": len(faces)}
        return PhotoPrediction({**row, "face": None, "box": None})
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
