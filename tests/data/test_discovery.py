import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfdetect.data.discovery import (
    DatasetError,
    canonical_split,
    find_splits,
    list_samples,
    load_split,
    split_folder,
    write_bad_files,
)


def write_image(path: Path, seed: int = 0, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)


def make_split(folder: Path, real: str = "Real", fake: str = "Fake", count: int = 2) -> None:
    for index in range(count):
        write_image(folder / real / f"r{index}.jpg", index)
        write_image(folder / fake / f"f{index}.png", index + 100, "PNG")


@pytest.mark.parametrize(
    ("train", "validation", "test"),
    [
        ("Train", "Validation", "Test"),
        ("train", "val", "test"),
        ("TRAIN", "Valid", "TEST"),
        ("train", "validation", "Test"),
    ],
)
def test_split_names_in_any_spelling(tmp_path: Path, train: str, validation: str, test: str) -> None:
    for name in (train, validation, test):
        make_split(tmp_path / name, real="real", fake="FAKE")
    splits = find_splits(tmp_path)
    assert {key: path.name for key, path in splits.items()} == {
        "Train": train,
        "Validation": validation,
        "Test": test,
    }
    samples = list_samples(split_folder(tmp_path, "val"))
    assert sorted(sample.label for sample in samples) == [0, 0, 1, 1]


def test_folder_with_real_and_fake_is_its_own_split(tmp_path: Path) -> None:
    make_split(tmp_path)
    assert split_folder(tmp_path, "Test") == tmp_path


def test_labels_follow_the_study_fake_0_real_1(tmp_path: Path) -> None:
    make_split(tmp_path)
    by_folder = {sample.path.parent.name: sample.label for sample in list_samples(tmp_path)}
    assert by_folder == {"Fake": 0, "Real": 1}


def test_missing_split_says_what_was_expected_and_found(tmp_path: Path) -> None:
    make_split(tmp_path / "Train")
    (tmp_path / "notes").mkdir()
    with pytest.raises(DatasetError) as error:
        split_folder(tmp_path, "Validation")
    message = str(error.value)
    assert "no Validation split" in message and "found: Train, notes" in message
    assert "\n" not in message


def test_missing_class_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "Real" / "a.jpg")
    (tmp_path / "Other").mkdir()
    with pytest.raises(DatasetError, match="no Fake folder"):
        list_samples(tmp_path)


def test_empty_class_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "Real" / "a.jpg")
    (tmp_path / "Fake").mkdir()
    with pytest.raises(DatasetError, match="empty class folder"):
        list_samples(tmp_path)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        find_splits(tmp_path / "missing")


def test_unknown_split_name() -> None:
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        canonical_split("dev")


@pytest.fixture
def split_with_bad_files(tmp_path: Path) -> Path:
    make_split(tmp_path, count=3)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "Real" / "truncated.jpg").write_bytes(buffer.getvalue()[:300])
    (tmp_path / "Real" / "zero.jpg").write_bytes(b"")
    (tmp_path / "Fake" / "notes.txt").write_text("not an image")
    (tmp_path / "Fake" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "Fake" / "dangling.jpg").symlink_to(tmp_path / "does-not-exist.jpg")
    (tmp_path / "Fake" / ".DS_Store").write_bytes(b"hidden files are ignored")
    return tmp_path


def test_bad_files_are_reported_and_skipped(split_with_bad_files: Path, tmp_path: Path) -> None:
    samples, bad = load_split(split_with_bad_files, "Test")
    assert len(samples) == 6
    reasons = {item.path.name: item.reason for item in bad}
    assert set(reasons) == {"truncated.jpg", "zero.jpg", "notes.txt", "corrupt.png", "dangling.jpg"}
    assert "empty file" in reasons["zero.jpg"]
    assert "truncated" in reasons["truncated.jpg"].lower()
    assert "not a readable image" in reasons["notes.txt"]
    assert "No such file" in reasons["dangling.jpg"]
    report = tmp_path / "run" / "bad_files.txt"
    write_bad_files(bad, report)
    lines = report.read_text().splitlines()[1:]
    assert len(lines) == 5 and all("\t" in line for line in lines)


def test_strict_data_fails_naming_the_file(split_with_bad_files: Path) -> None:
    with pytest.raises(DatasetError, match=r"(truncated|zero|notes|corrupt|dangling)\.\w+: .*--strict-data"):
        load_split(split_with_bad_files, "Test", strict=True)


def test_a_class_left_empty_by_bad_files_is_an_error(tmp_path: Path) -> None:
    write_image(tmp_path / "Real" / "a.jpg")
    (tmp_path / "Fake").mkdir()
    (tmp_path / "Fake" / "broken.jpg").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="no readable Fake images"):
        load_split(tmp_path, "Test")


def test_real_dataset_layout(real_data: Path) -> None:
    counts = {split: len(list_samples(split_folder(real_data, split))) for split in ("Train", "Validation", "Test")}
    assert counts == {"Train": 20999, "Validation": 1204, "Test": 798}  # Train grew on 2026-11-27


def test_copying_a_split_keeps_it_valid(tiny_dataset: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_dataset / "Test", tmp_path / "copy")
    samples, bad = load_split(tmp_path / "copy", "Test")
    assert len(samples) == 24 and not bad
