"""Face cropping for in-the-wild photos: the largest face found by OpenCV's bundled Haar cascade, with a margin."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PIL import Image

from dfdetect.errors import ImageLoadError

_LOCAL = threading.local()


class NoFaceError(ImageLoadError):
    """An image in which no face was found."""


def _detector() -> Any:
    import cv2

    # Cascade classifiers are not thread-safe: one per thread. The XML ships inside opencv-python-headless.
    if not hasattr(_LOCAL, "cascade"):
        xml = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        _LOCAL.cascade = cv2.CascadeClassifier(xml)
    return _LOCAL.cascade


def crop_largest_face(image: Image.Image, name: str = "<image>", margin: float = 0.3) -> Image.Image:
    """The largest detected face, enlarged by `margin` on each side and made square; NoFaceError if none."""
    import cv2

    gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    smallest = max(24, min(gray.shape) // 12)
    faces = _detector().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest))
    if len(faces) == 0:
        raise NoFaceError(name, "no face found (--crop-face)")
    x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
    side = int(max(w, h) * (1 + 2 * margin))
    cx, cy = x + w / 2, y + h / 2
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    right, bottom = int(min(image.width, cx + side / 2)), int(min(image.height, cy + side / 2))
    return image.crop((left, top, right, bottom))
