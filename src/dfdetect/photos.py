"""Photos with several faces (`predict --crop-face`): every face above a size is scored, and the most fake face
decides the photo's verdict (a swapped face among real ones makes the photo a fake).

By default (framing `auto`) it does so only for photos that show much more than a face (faces.is_loosely_framed)
and scores face crops, and images without a face, as they are; `always` (`--crop-face`) cuts every photo (no
face: an error row); `never` (`--no-crop-face`) cuts none.
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
    cuts,
    detect_faces,
)
from dfdetect.quality import caution_fields
from dfdetect.runtime.base import BasePredictor

logger = logging.getLogger(__name__)

DEFAULT_MIN_FACE = 32
"""Faces smaller than this many pixels across are not scored: the models saw 128-224 px faces."""


@dataclass(frozen=True)
class FaceScore:
    """One face of a photo: its index (largest first), box, p_fake, estimated noise (grey levels) and caution."""

    face: int
    box: tuple[float, float, float, float]
    p_fake: float
    noise: float | None = None
    caution: str | None = None
    caution_codes: list[str] = field(default_factory=list)


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
    min_face: int = DEFAULT_MIN_FACE,
) -> tuple[list[Face], bool]:
    """The faces found in `image` (largest first) and whether they are to be cut out and scored one by one (else
    the image is scored as it is): always when there is a face in `always` mode, for loosely framed photos in
    `auto` mode, never in `never` mode."""
    faces = detect_faces(image, detector, min_size=min_face) if check_crop_mode(mode) != "never" else []
    return faces, cuts(image, faces[0] if faces else None, mode)


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
    loaded: list[tuple[int, Image.Image]] = []
    for index, path in enumerate(paths):
        try:
            loaded.append((index, load_rgb(path)))
        except FileNotFoundError:
            rows[index] = PhotoPrediction(error_row(predictor, path, f"{path}: no such file"))
        except (DfdetectError, OSError) as error:
            rows[index] = PhotoPrediction(error_row(predictor, path, str(error)))
    framed = score_framed(predictor, [image for _, image in loaded], mode, detector, margin, min_face)
    for (index, _), result in zip(loaded, framed, strict=True):
        path = paths[index]
        if mode == "always" and not result.faces:
            rows[index] = PhotoPrediction(error_row(predictor, path, f"{path}: no face found (--crop-face)"))
        else:
            rows[index] = photo_prediction(predictor, path, result)
    return [rows[index] for index in range(len(paths))]


@dataclass(frozen=True)
class Framed:
    """One image scored after framing: the faces found (largest first), whether they were cut out and scored
    one by one, and P(Real) and estimated noise of each face cut out (else one of each, the whole image's)."""

    faces: list[Face]
    cut: bool
    p_real: np.ndarray
    noise: np.ndarray
    """Estimated noise of each piece scored (dfdetect.quality), in the order of p_real."""
    sides: np.ndarray
    """Shorter side of each piece scored (pixels, before the network's resize), in the order of p_real."""

    @property
    def decisive(self) -> int:
        """Index of the score that decides: the most fake face's."""
        return int(np.argmin(self.p_real))

    @property
    def verdict(self) -> float:
        """P(Real) that decides the image: its most fake face's, or the whole image's."""
        return float(self.p_real[self.decisive])

    @property
    def decisive_noise(self) -> float:
        """Estimated noise of the piece that decides."""
        return float(self.noise[self.decisive])

    @property
    def decisive_side(self) -> int:
        """Shorter side of the piece that decides (pixels)."""
        return int(self.sides[self.decisive])


def score_framed(
    predictor: BasePredictor,
    images: Sequence[Image.Image],
    mode: str = "auto",
    detector: str = DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    min_face: int = DEFAULT_MIN_FACE,
) -> list[Framed]:
    """Frame each image (see `frame`) and score every face cut out, or the image as it is, in one pass. In
    `always` mode an image without a face is scored whole here; callers that treat it as an error check `faces`."""
    framing = [frame(image, mode, detector, min_face) for image in images]
    pieces = [
        [crop_face(image, face, margin) for face in faces] if cut else [image]
        for image, (faces, cut) in zip(images, framing, strict=True)
    ]
    flat = [piece for group in pieces for piece in group]
    scores = iter(predictor.predict_images(flat) if flat else [])
    noise = iter([predictor.input_noise(piece) for piece in flat])
    return [
        Framed(
            faces,
            cut,
            np.array([next(scores) for _ in group]),
            np.array([next(noise) for _ in group]),
            np.array([min(piece.size) for piece in group]),
        )
        for (faces, cut), group in zip(framing, pieces, strict=True)
    ]


def photo_prediction(predictor: BasePredictor, path: Path, framed: Framed) -> PhotoPrediction:
    """The photo's row: the most fake face's verdict when its faces were cut out, else the whole image's."""
    verdict = predictor.prediction(str(path), framed.verdict, framed.decisive_noise, framed.decisive_side)
    row = {**verdict.to_dict(), "faces_found": len(framed.faces)}
    if not framed.cut:
        return PhotoPrediction({**row, "face": None, "box": None})
    scores = [
        FaceScore(
            index,
            face.box,
            float(1 - p),
            round(float(noise), 2),
            **caution_fields(predictor.cautions_of(noise, int(side))),
        )
        for index, (face, p, noise, side) in enumerate(
            zip(framed.faces, framed.p_real, framed.noise, framed.sides, strict=True)
        )
    ]
    box = box_text(framed.faces[framed.decisive].box)
    return PhotoPrediction({**row, "face": framed.decisive, "box": box}, scores)


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
