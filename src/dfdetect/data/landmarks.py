"""Face landmarks found once per training image, for `--pseudo-fakes sbi-landmarks`.

MTCNN costs about 27 ms per face on one core (bench/pseudo_fakes.py), so finding the landmarks again each time an
image is turned into a pseudo-fake made the DataLoader workers the bottleneck of training on a small CPU (11 to 20
minutes per epoch of 10.5k real faces; docs/results.md, section 15). The landmarks of a file never change, so
they are found once, before the first epoch, and kept in a JSON file:

    {"format": 1, "detector": "mtcnn-5", "faces": {"Train/Real/a.jpg": [[x, y] x 5], "Train/Real/b.jpg": null}}

Keys are paths relative to the dataset root (the file stays valid when the dataset moves); null means MTCNN
found no face there, and the self-blend falls back to the ellipse mask, as it does without the file. The
trainer writes it to `RUN/landmarks.json` unless `--landmarks FILE` names one to read (and to write when it does
not exist yet), so several runs on the same data can share it. Only images the file lacks are looked at again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from dfdetect.errors import DatasetError, ImageLoadError
from dfdetect.stores import read_store, write_store

logger = logging.getLogger(__name__)

FORMAT = 1
DETECTOR = "mtcnn-5"
LOG_EVERY = 1000
"""Images between progress lines while landmarks are found."""

Landmarks = dict[Path, "np.ndarray | None"]


def relative_key(path: Path, root: Path) -> str:
    """`path` relative to the dataset root, with forward slashes (the file's keys)."""
    return Path(os.path.relpath(path, root)).as_posix()


def read_landmarks(file: Path, root: Path) -> Landmarks:
    """The landmarks stored in `file`, keyed by absolute-or-as-given paths under `root`."""
    table: Landmarks = {}
    for key, points in read_store(file, "landmarks", FORMAT, "faces")["faces"].items():
        value = None if points is None else np.asarray(points, dtype=np.float32)
        if value is not None and value.shape != (5, 2):
            raise DatasetError(f"{file}: landmarks of {key} have shape {value.shape}, not (5, 2)")
        table[root / key] = value
    return table


def write_landmarks(file: Path, root: Path, table: Mapping[Path, np.ndarray | None]) -> None:
    """Store `table` in `file` (atomically: a crash leaves the old file or none; under torchrun only rank 0
    writes it, see engine.trainer.training_landmarks)."""
    faces = {
        relative_key(path, root): None if points is None else np.round(points, 2).tolist()
        for path, points in sorted(table.items(), key=lambda item: str(item[0]))
    }
    write_store(file, FORMAT, {"detector": DETECTOR, "faces": faces})


def find_landmarks(paths: Iterable[Path], max_pixels: int) -> Landmarks:
    """The five MTCNN landmarks of the largest face in each image (None where there is none or the file is
    unreadable: that image's self-blends use the ellipse)."""
    from dfdetect.data.images import load_rgb
    from dfdetect.data.pseudo_fakes import face_landmarks

    table: Landmarks = {}
    paths = list(paths)
    started = time.perf_counter()
    for done, path in enumerate(paths, start=1):
        try:
            table[path] = face_landmarks(np.asarray(load_rgb(path, max_pixels=max_pixels)))
        except ImageLoadError as error:  # the pre-scan skips bad files; one that went bad since is only logged
            logger.warning("%s", error)
            table[path] = None
        if done % LOG_EVERY == 0 or done == len(paths):
            logger.info("landmarks: %d/%d images, %.0f s", done, len(paths), time.perf_counter() - started)
    return table


def landmarks_for(paths: Iterable[Path], file: Path, root: Path, max_pixels: int) -> Landmarks:
    """The landmarks of `paths`: read from `file`, the missing ones found with MTCNN and written back."""
    paths = list(paths)
    table = read_landmarks(file, root) if file.is_file() else {}
    missing = [path for path in paths if path not in table]
    if missing:
        logger.info("landmarks: finding %d of %d faces with MTCNN, once, into %s", len(missing), len(paths), file)
        table.update(find_landmarks(missing, max_pixels))
        write_landmarks(file, root, table)
    found = sum(table[path] is not None for path in paths)
    logger.info("landmarks: %d of %d faces found (the rest use the ellipse mask), from %s", found, len(paths), file)
    return {path: table[path] for path in paths}
