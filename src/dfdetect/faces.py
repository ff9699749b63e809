"""Face finding and cropping for in-the-wild photos: MTCNN (default) or OpenCV's bundled Haar cascade.

A crop is the face box grown or shrunk by a margin on each side, made square around the box's centre, clipped at the
image's border; the model's own preprocessing then resizes it. The DFDC crops the detectors learned from are
tight: a crop's side is 0.71 of the MTCNN box found in it (median over 80 Train crops, docs/results.md section 7),
so `auto` framing judges an image against that framing (TRAINING_MARGIN, -0.15). The crop it then scores is a
little looser (DEFAULT_MARGIN, -0.10: side = 0.8 x the box), chosen on other sources' photos (section 31; likely
reasons, not measured: MTCNN may see a face cut off by a DFDC crop's border as larger than it is, and a tighter crop
cuts away more of a swapped face's edge, where the blending is).
bench/face_detectors.py measures both detectors.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dfdetect.errors import ConfigError, DatasetError, ImageLoadError
from dfdetect.stores import read_store, write_store

logger = logging.getLogger(__name__)

DETECTORS = ("mtcnn", "haar")
DEFAULT_DETECTOR = "mtcnn"
"""Found more faces with fewer false detections than the Haar cascade (docs/results.md, face detectors)."""
TRAINING_MARGIN = -0.15
"""The training crops' framing in MTCNN's terms: a DFDC crop's side is 0.7 of the box MTCNN finds in it (section 7).
`auto` judges whether an image is framed like them at this margin, whatever margin the crop is cut at."""
DEFAULT_MARGIN = -0.10
"""Share of the face box added on each side of the crop that is scored (negative: tighter than the box). Chosen on
lfw-faceswap's photos, the other source whose reals and fakes share a resolution: AUC 0.511 at -0.25, 0.867 at
-0.15, 0.918 at -0.10 and -0.05, 0.876 at 0.05 (the default detector; of the tied two, -0.10 is the more accurate
at the shipped threshold; docs/results.md section 31)."""

CROP_MODES = ("auto", "always", "never")
"""How an image is framed before scoring: `auto` cuts a loosely framed photo to its faces and scores a face crop as
it is; `always` cuts every image to its faces; `never` scores every image as it is."""
AUTO_CROP_BELOW = 0.6
"""`auto` cuts an image to its faces when the largest face's crop (framed like the training crops) spans less than
this share of the image's shorter side. On DFDC Validation that share is 0.65 or more for every face (median
0.93), so `auto` leaves such crops as they are; head-and-shoulders photos sit near 0.35 (docs/results.md,
section 17)."""
LOG_EVERY = 500
"""Images between progress lines while faces are found for a dataset."""

CropBox = tuple[int, int, int, int]
Size = tuple[int, int]

_LOCAL = threading.local()


class NoFaceError(ImageLoadError):
    """An image in which no face was found."""


@dataclass(frozen=True)
class Face:
    """A detected face: box (left, top, right, bottom) in pixels and the detector's confidence."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def _haar() -> Any:
    import cv2

    # Cascade classifiers are not thread-safe: one per thread. The XML ships inside opencv-python-headless.
    if not hasattr(_LOCAL, "cascade"):
        xml = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        _LOCAL.cascade = cv2.CascadeClassifier(xml)
    return _LOCAL.cascade


def _mtcnn() -> Any:
    try:
        from dfdetect.mtcnn import shared_detector  # torch is imported only when MTCNN is used
    except ImportError as error:
        raise ConfigError(
            f"MTCNN face detection needs PyTorch ({error}); without it, frame images with --face-detector haar "
            "or score them as they are with --no-crop-face"
        ) from error
    return shared_detector()


def detect_faces(image: Image.Image, detector: str = DEFAULT_DETECTOR, min_size: int = 20) -> list[Face]:
    """Faces at least `min_size` pixels across, largest first."""
    pixels = np.asarray(image.convert("RGB"))
    if detector == "mtcnn":
        faces = [Face(d.box, d.score) for d in _mtcnn().detect(pixels)]
    elif detector == "haar":
        import cv2

        gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        found = _haar().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
        faces = [Face((float(x), float(y), float(x + w), float(y + h)), 1.0) for x, y, w, h in found]
    else:
        raise ConfigError(f"unknown face detector {detector!r}; known: {', '.join(DETECTORS)}")
    return sorted((face for face in faces if face.size >= min_size), key=lambda face: -face.size)


def image_size(image: Image.Image | Size) -> Size:
    """(width, height) of an image, or the size itself (what face finding keeps of an image it looked at)."""
    return image.size if isinstance(image, Image.Image) else image


def crop_box(image: Image.Image | Size, face: Face, margin: float = DEFAULT_MARGIN) -> CropBox:
    """The face's box enlarged by `margin` of its size on each side, squared, clipped at the border of the image
    (or of an image of that size)."""
    width, height = image_size(image)
    if margin <= -0.5:
        raise ValueError(f"margin {margin}: a crop needs a margin above -0.5 (-0.5 leaves nothing of the face)")
    left, top, right, bottom = face.box
    side = face.size * (1 + 2 * margin)
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    return (
        int(max(0, centre_x - side / 2)),
        int(max(0, centre_y - side / 2)),
        int(min(width, centre_x + side / 2)),
        int(min(height, centre_y + side / 2)),
    )


def crop_face(image: Image.Image, face: Face, margin: float = DEFAULT_MARGIN) -> Image.Image:
    """The image inside crop_box."""
    return image.crop(crop_box(image, face, margin))


def largest_face(image: Image.Image, detector: str = DEFAULT_DETECTOR) -> Face | None:
    """The largest face at least a twelfth of the image's shorter side (20 px or more) across, or None."""
    faces = detect_faces(image, detector, min_size=max(20, min(image.size) // 12))
    return faces[0] if faces else None


def is_loosely_framed(image: Image.Image | Size, face: Face) -> bool:
    """Whether the image shows much more than the face's training-framed crop (`auto` then cuts it)."""
    left, top, right, bottom = crop_box(image, face, TRAINING_MARGIN)
    return max(right - left, bottom - top) < AUTO_CROP_BELOW * min(image_size(image))


def check_crop_mode(mode: str) -> str:
    if mode not in CROP_MODES:
        raise ConfigError(f"unknown face-crop mode {mode!r}; known: {', '.join(CROP_MODES)}")
    return mode


def cuts(image: Image.Image | Size, face: Face | None, mode: str) -> bool:
    """Whether framing `mode` cuts `image` to its largest `face` (None: no face found, nothing to cut)."""
    if face is None or check_crop_mode(mode) == "never":
        return False
    return mode == "always" or is_loosely_framed(image, face)


def crop_largest_face(
    image: Image.Image, name: str = "<image>", margin: float = DEFAULT_MARGIN, detector: str = DEFAULT_DETECTOR
) -> Image.Image:
    """The largest detected face, cropped with `margin`; NoFaceError if there is none."""
    face = largest_face(image, detector)
    if face is None:
        raise NoFaceError(name, "no face found (--crop-face)")
    return crop_face(image, face, margin)


@dataclass(frozen=True)
class Detection:
    """What face finding kept of one image: its size (width, height) and largest face (None: no face)."""

    size: Size
    face: Face | None


FACES_FORMAT = 1


def file_stamp(path: Path) -> list[int | str]:
    """A file's size in bytes and a digest of its bytes (BLAKE2b, 128 bits): a stored detection is used only while
    both match. The content, not the modification time: a dataset copied again (new times, same bytes) keeps its
    faces, and hashing a face crop costs microseconds next to the milliseconds of finding its face."""
    content = path.read_bytes()
    return [len(content), hashlib.blake2b(content, digest_size=16).hexdigest()]


def read_faces(file: Path, detector: str, paths: Iterable[Path]) -> dict[Path, Detection]:
    """The detections `file` holds for `paths` (by their resolved path) by `detector`, each while the image file's
    size and content are still those stored; the other paths are left out (to be looked at again)."""
    images = read_store(file, "faces", FACES_FORMAT, "detectors")["detectors"].get(detector, {})
    found: dict[Path, Detection] = {}
    for path in paths:
        entry = images.get(str(path.resolve()))
        try:
            if entry is None or entry["stamp"] != file_stamp(path):
                continue
            face = None
            if entry["face"] is not None:
                left, top, right, bottom, score = (float(value) for value in entry["face"])
                face = Face((left, top, right, bottom), score)
            found[path] = Detection((int(entry["size"][0]), int(entry["size"][1])), face)
        except OSError:  # gone since: looked at again, and reported then
            continue
        except (KeyError, TypeError, IndexError, ValueError) as error:
            raise DatasetError(f"{file}: entry of {path} is malformed ({error!r}); delete the file") from error
    return found


def write_faces(file: Path, detector: str, detections: dict[Path, Detection]) -> None:
    """Add `detections` (by `detector`) to `file`, keeping what it holds for other images and detectors; written
    atomically, so a crash leaves the old file or none (two processes writing it at once: the last one wins)."""
    everyone = read_store(file, "faces", FACES_FORMAT, "detectors")["detectors"] if file.is_file() else {}
    images = everyone.setdefault(detector, {})
    for path, detection in detections.items():
        face = None if detection.face is None else [float(v) for v in (*detection.face.box, detection.face.score)]
        images[str(path.resolve())] = {"stamp": file_stamp(path), "size": list(detection.size), "face": face}
    write_store(file, FACES_FORMAT, {"detectors": everyone})


@dataclass
class FaceCropper:
    """Crops a dataset's images to their largest face, framed like the training crops (`evaluate --crop-face`).

    A detector trained on tight face crops scores a loosely framed photo (head, shoulders, background) as
    something it never saw; cropping it the way the training faces were cropped puts it back in their frame
    (docs/results.md, section 17). With `mode` auto, only loosely framed images are cut (is_loosely_framed);
    always cuts every image with a face. The faces are found once per image and kept, so every model scored on
    the same data reuses them; with a `faces_file` (`evaluate --faces-file`) they are also kept on disk, in JSON
    by resolved path, for later runs with any mode or margin. An image without a face (or unreadable) has no box
    and is scored whole.
    """

    mode: str = "always"
    detector: str = DEFAULT_DETECTOR
    margin: float = DEFAULT_MARGIN
    faces_file: Path | None = None
    detections: dict[Path, Detection | None] = field(default_factory=dict)  # None: unreadable

    def __post_init__(self) -> None:
        if check_crop_mode(self.mode) == "never":
            raise ConfigError("a FaceCropper crops: use no cropper to score images as they are")

    def boxes_of(self, paths: Iterable[Path], max_pixels: int) -> dict[Path, CropBox | None]:
        """The crop box of each image's largest face (None: scored whole, for want of a face or, in auto mode,
        because the image is already framed like a face crop)."""
        paths = list(paths)
        missing = [path for path in paths if path not in self.detections]
        if missing and self.faces_file is not None and self.faces_file.is_file():
            stored = read_faces(self.faces_file, self.detector, missing)
            self.detections.update(stored)
            logger.info("faces: %d of %d images from %s", len(stored), len(missing), self.faces_file)
            missing = [path for path in missing if path not in stored]
        found = self.find(missing, max_pixels)
        if found and self.faces_file is not None:
            write_faces(self.faces_file, self.detector, found)
        return {path: self.box(path) for path in paths}

    def find(self, paths: list[Path], max_pixels: int) -> dict[Path, Detection]:
        """Find the largest face of each of `paths`; returns the detections of the readable ones."""
        from dfdetect.data.images import load_rgb

        found: dict[Path, Detection] = {}
        started = time.perf_counter()
        for done, path in enumerate(paths, start=1):
            try:
                image = load_rgb(path, max_pixels=max_pixels)
            except ImageLoadError as error:  # the loader reports it again as a bad file
                logger.warning("%s", error)
                self.detections[path] = None
                continue
            found[path] = self.detections[path] = Detection(image.size, largest_face(image, self.detector))
            if done % LOG_EVERY == 0 or done == len(paths):
                logger.info("faces: %d/%d images, %.0f s", done, len(paths), time.perf_counter() - started)
        return found

    def box(self, path: Path) -> CropBox | None:
        detection = self.detections.get(path)
        if detection is None or not cuts(detection.size, detection.face, self.mode):
            return None
        assert detection.face is not None  # cuts() is False without a face
        return crop_box(detection.size, detection.face, self.margin)

    def summary(self, paths: Iterable[Path]) -> dict[str, Any]:
        """What a report states about the crops of `paths`: mode, detector, margin, images cut to their face,
        images already framed like a face crop (auto), images without a face (both of these scored whole)."""
        paths = list(paths)
        cropped = sum(self.box(path) is not None for path in paths)
        no_face = sum(getattr(self.detections.get(path), "face", None) is None for path in paths)
        return {
            "mode": self.mode,
            "detector": self.detector,
            "margin": self.margin,
            "cropped": cropped,
            "already_framed": len(paths) - cropped - no_face,
            "no_face": no_face,
        }


def face_cropper(
    mode: str, detector: str = DEFAULT_DETECTOR, margin: float = DEFAULT_MARGIN, faces_file: Path | None = None
) -> FaceCropper | None:
    """The FaceCropper of framing `mode` for a dataset's images, or None for `never` (scored as they are)."""
    return None if check_crop_mode(mode) == "never" else FaceCropper(mode, detector, margin, faces_file)
