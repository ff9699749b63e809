"""Find datasets on disk (Kaggle layout or a plain Real/Fake folder) and pre-scan them for bad files."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dfdetect.conventions import CLASS_NAMES
from dfdetect.data.images import DEFAULT_MAX_PIXELS, check_image
from dfdetect.errors import DatasetError

logger = logging.getLogger(__name__)

SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "Train": ("train",),
    "Validation": ("val", "valid", "validation"),
    "Test": ("test",),
}


@dataclass(frozen=True)
class Sample:
    """One image file and its label (0 = Fake, 1 = Real)."""

    path: Path
    label: int


@dataclass(frozen=True)
class BadFile:
    """A file skipped by the pre-scan, with the reason."""

    path: Path
    reason: str


def _subfolders(folder: Path) -> dict[str, Path]:
    return {child.name.lower(): child for child in sorted(folder.iterdir()) if child.is_dir()}


def _found(folder: Path) -> str:
    names = sorted(child.name for child in folder.iterdir() if not child.name.startswith("."))
    return ", ".join(names) if names else "nothing"


def canonical_split(name: str) -> str:
    """Map a split name in any spelling (test, val, Validation, ...) to Train, Validation or Test."""
    for canonical, aliases in SPLIT_ALIASES.items():
        if name.lower() in aliases:
            return canonical
    raise DatasetError(f"unknown split {name!r}; expected one of Train, Validation (val, valid), Test")


def find_splits(root: Path) -> dict[str, Path]:
    """Return the split folders under a dataset root, keyed Train / Validation / Test."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    subfolders = _subfolders(root)
    splits: dict[str, Path] = {}
    for canonical, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in subfolders:
                splits[canonical] = subfolders[alias]
                break
    return splits


def is_class_folder(folder: Path) -> bool:
    """True when `folder` holds Real and Fake sub-folders (any case)."""
    subfolders = _subfolders(folder)
    return all(name.lower() in subfolders for name in CLASS_NAMES)


def split_folder(root: Path, split: str) -> Path:
    """Resolve the folder of one split; a folder holding Real/Fake directly is its own split."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if is_class_folder(root):
        return root
    splits = find_splits(root)
    if not splits and any(name.lower() in _subfolders(root) for name in CLASS_NAMES):
        return root  # one class only (Real or Fake): its own split, which evaluation accepts
    canonical = canonical_split(split)
    if canonical not in splits:
        aliases = ", ".join(SPLIT_ALIASES[canonical])
        raise DatasetError(
            f"{root}: no {canonical} split; expected Train/Validation/Test folders (a {canonical} folder may be "
            f"named {aliases}, any case) each holding Real and Fake, or Real and Fake directly; found: {_found(root)}"
        )
    return splits[canonical]


def list_files(folder: Path) -> list[Path]:
    """All visible files under `folder`, recursively, in a stable order."""
    files: list[Path] = []
    for directory, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        files.extend(Path(directory) / name for name in sorted(filenames) if not name.startswith("."))
    return files


def list_samples(folder: Path, one_class: bool = False) -> list[Sample]:
    """List every file under folder/Real and folder/Fake with its label; errors on a missing or empty class.

    With `one_class` (evaluation of, say, a user's own real photos), one of the two classes is enough."""
    subfolders = _subfolders(folder)
    samples: list[Sample] = []
    for label, class_name in enumerate(CLASS_NAMES):
        class_folder = subfolders.get(class_name.lower())
        if class_folder is None:
            if one_class:
                continue
            raise DatasetError(
                f"{folder}: no {class_name} folder; expected Real and Fake (any case), found: {_found(folder)}"
            )
        files = list_files(class_folder)
        if not files and not one_class:
            raise DatasetError(f"{class_folder}: empty class folder; expected {class_name} images in it")
        samples.extend(Sample(path, label) for path in files)
    if not samples:
        raise DatasetError(f"{folder}: no images in a Real or Fake folder (any case); found: {_found(folder)}")
    return samples


def scan_samples(
    samples: Sequence[Sample], max_pixels: int = DEFAULT_MAX_PIXELS, workers: int | None = None
) -> tuple[list[Sample], list[BadFile]]:
    """Check that every file decodes; return the good samples and the bad files with reasons."""
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    # Pillow releases the GIL while decoding, so threads scale without pickling anything.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(lambda sample: check_image(sample.path, max_pixels), samples, chunksize=64))
    good = [sample for sample, reason in zip(samples, reasons, strict=True) if reason is None]
    bad = [BadFile(sample.path, reason) for sample, reason in zip(samples, reasons, strict=True) if reason]
    for item in bad:
        logger.warning("skipping bad file %s: %s", item.path, item.reason)
    return good, bad


def load_split(
    root: Path, split: str, strict: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS, one_class: bool = False
) -> tuple[list[Sample], list[BadFile]]:
    """List and pre-scan one split; with `strict`, the first bad file raises instead of being skipped; with
    `one_class`, a split holding one class only is accepted (for evaluation)."""
    folder = split_folder(root, split)
    samples, bad = scan_samples(list_samples(folder, one_class), max_pixels=max_pixels)
    if bad and strict:
        raise DatasetError(f"{bad[0].path}: {bad[0].reason} (--strict-data; {len(bad)} bad file(s) in {folder})")
    if one_class and not samples:
        raise DatasetError(f"{folder}: no readable images left after skipping bad files")
    for label, class_name in enumerate(CLASS_NAMES):
        if not one_class and not any(sample.label == label for sample in samples):
            raise DatasetError(f"{folder}: no readable {class_name} images left after skipping bad files")
    return samples, bad


def write_bad_files(bad: Sequence[BadFile], path: Path) -> None:
    """Write one line per bad file: path, a tab, the reason."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("# files skipped by the pre-scan: path<TAB>reason\n")
        for item in bad:
            handle.write(f"{item.path}\t{item.reason}\n")


def class_counts(samples: Sequence[Sample]) -> dict[str, int]:
    """Images per class name."""
    return {name: sum(1 for sample in samples if sample.label == label) for label, name in enumerate(CLASS_NAMES)}
