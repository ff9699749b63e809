"""Landmarks found once per training image for sbi-landmarks: the file, what is found again, and the trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dfdetect.data.pseudo_fakes as pseudo_fakes
from dfdetect.data.dataset import FaceDataset
from dfdetect.data.discovery import list_samples
from dfdetect.data.landmarks import landmarks_for, read_landmarks, write_landmarks
from dfdetect.data.pseudo_fakes import blend, make_pseudo_fake
from dfdetect.data.synthetic import make_synthetic_dataset
from dfdetect.data.transforms import Preprocessing, build_eval_transform
from dfdetect.engine.trainer import fit
from dfdetect.errors import DatasetError
from dfdetect.run_folder import RunFolder
from tests.conftest import tiny_config

POINTS = np.array([[10, 12], [22, 12], [16, 18], [11, 24], [21, 24]], dtype=np.float32)


class FakeDetector:
    """Stands in for MTCNN: counts its calls and finds POINTS in every image."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.calls += 1
        return POINTS.copy()


@pytest.fixture
def detector(monkeypatch: pytest.MonkeyPatch) -> FakeDetector:
    fake = FakeDetector()
    monkeypatch.setattr(pseudo_fakes, "face_landmarks", fake)
    return fake


def test_the_file_keeps_paths_relative_to_the_dataset_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    table = {root / "Train" / "Real" / "a.jpg": POINTS, root / "Train" / "Real" / "b.jpg": None}
    file = tmp_path / "landmarks.json"
    write_landmarks(file, root, table)
    assert '"Train/Real/a.jpg"' in file.read_text() and str(tmp_path) not in file.read_text()
    moved = tmp_path / "elsewhere"  # the dataset moved: the same file still applies
    again = read_landmarks(file, moved)
    assert set(again) == {moved / "Train" / "Real" / "a.jpg", moved / "Train" / "Real" / "b.jpg"}
    np.testing.assert_allclose(again[moved / "Train" / "Real" / "a.jpg"], POINTS)
    assert again[moved / "Train" / "Real" / "b.jpg"] is None


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "cannot read"),
        ('{"format": 99, "faces": {}}', "not a dfdetect landmarks file"),
        ('{"format": 1, "faces": {"a.jpg": [[1, 2]]}}', r"a.jpg have shape \(1, 2\)"),
    ],
)
def test_a_bad_file_is_an_error_naming_it(tmp_path: Path, content: str, problem: str) -> None:
    file = tmp_path / "landmarks.json"
    file.write_text(content)
    with pytest.raises(DatasetError, match=problem) as error:
        read_landmarks(file, tmp_path)
    assert str(file) in str(error.value)


def test_only_images_the_file_lacks_are_looked_at(tmp_path: Path, detector: FakeDetector) -> None:
    data = make_synthetic_dataset(tmp_path / "data", {"Train": 8}, image_size=32, seed=0)
    reals = [s.path for s in list_samples(data / "Train") if s.label == 1]
    file = tmp_path / "landmarks.json"
    first = landmarks_for(reals[:2], file, data, 10**8)
    assert detector.calls == 2 and set(first) == set(reals[:2])
    second = landmarks_for(reals, file, data, 10**8)  # two known, the rest found and added to the file
    assert detector.calls == len(reals) and set(second) == set(reals)
    assert set(read_landmarks(file, data)) == set(reals)
    landmarks_for(reals, file, data, 10**8)
    assert detector.calls == len(reals)  # nothing new to find


def test_stored_landmarks_make_the_same_pseudo_fake_as_mtcnn(tmp_path: Path, detector: FakeDetector) -> None:
    data = make_synthetic_dataset(tmp_path / "data", {"Train": 8}, image_size=32, seed=0)
    reals = [s for s in list_samples(data / "Train") if s.label == 1]
    transform = build_eval_transform(Preprocessing(input_size=32))
    looked_up = FaceDataset(
        reals, transform, pseudo_fakes=["sbi-landmarks"], pseudo_fake_p=1.0, landmarks={s.path: POINTS for s in reals}
    )
    on_the_fly = FaceDataset(reals, transform, pseudo_fakes=["sbi-landmarks"], pseudo_fake_p=1.0)
    stored = [looked_up[(index, 7)] for index in range(len(reals))]
    assert detector.calls == 0 and all(int(label) == 0 for _, label in stored)  # stored landmarks: MTCNN never runs
    for index, (image, _) in enumerate(stored):
        np.testing.assert_array_equal(image.numpy(), on_the_fly[(index, 7)][0].numpy())
    assert detector.calls == len(reals)
    face = np.asarray(Image.open(reals[0].path).convert("RGB"))
    expected = blend(face, _after_the_draw(np.random.default_rng(3)), POINTS)[0]
    np.testing.assert_array_equal(
        make_pseudo_fake(face, ["sbi-landmarks"], np.random.default_rng(3), locate=lambda _: POINTS), expected
    )


def _after_the_draw(rng: np.random.Generator) -> np.random.Generator:
    rng.integers(1)  # make_pseudo_fake first draws which maker to use
    return rng


def test_training_finds_landmarks_once_and_a_second_run_reuses_the_file(tmp_path: Path, detector: FakeDetector) -> None:
    data = make_synthetic_dataset(tmp_path / "data", {"Train": 16, "Validation": 8}, image_size=32, seed=2)
    reals = sum(s.label == 1 for s in list_samples(data / "Train"))
    config = tiny_config(data, tmp_path / "first", epochs=1).replace(pseudo_fakes="sbi-landmarks", workers=0)
    fit(config)
    file = RunFolder(tmp_path / "first").landmarks
    assert len(read_landmarks(file, data)) == reals and detector.calls == reals  # once per real face, not per draw
    fit(config.replace(out=tmp_path / "second", landmarks=file))
    assert detector.calls == reals and not RunFolder(tmp_path / "second").landmarks.exists()
