"""`dfdetect evaluate --crop-face`: photos cut to their largest face, framed like the training crops, before
scoring (the other evaluate behaviours are tested with calibration, in test_calibration.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from dfdetect.cli import main
from dfdetect.data.dataset import FaceDataset
from dfdetect.data.discovery import Sample
from tests.test_faces import scene

FLAGS = ["--device", "cpu", "--workers", "0", "--bootstrap", "0"]


def photo_folder(root: Path) -> Path:
    """Real: two loosely framed faces; Fake: one face and one faceless grey image."""
    for label in ("Real", "Fake"):
        (root / label).mkdir(parents=True)
    scene(150, 60, 80).save(root / "Real" / "a.png")
    scene(110, 300, 200, seed=2).save(root / "Real" / "b.png")
    scene(130, 400, 60, seed=3).save(root / "Fake" / "c.png")
    Image.new("RGB", (320, 240), "grey").save(root / "Fake" / "grey.png")
    return root


def p_real_by_file(path: Path) -> dict[str, float]:
    with path.open(newline="") as handle:
        return {Path(row["path"]).name: float(row["p_real"]) for row in csv.DictReader(handle)}


def test_dataset_crops_each_image_to_its_box(monkeypatch: pytest.MonkeyPatch) -> None:
    import dfdetect.data.dataset as module

    monkeypatch.setattr(module, "load_rgb", lambda *_args, **_kwargs: Image.new("RGB", (200, 100)))
    samples = [Sample(Path("x.png"), 1), Sample(Path("y.png"), 0)]
    dataset = FaceDataset(samples, lambda image: torch.tensor(image.size), crops={Path("x.png"): (10, 20, 60, 70)})
    assert dataset[0][0].tolist() == [50, 50] and dataset[1][0].tolist() == [200, 100]


def test_evaluate_crop_face_scores_the_faces_and_counts_the_rest(trained_run: Path, tmp_path: Path) -> None:
    data = photo_folder(tmp_path / "photos")
    whole, cropped = tmp_path / "whole.csv", tmp_path / "cropped.csv"
    out = tmp_path / "eval" / "metrics.json"
    common = ["evaluate", "--model", str(trained_run), "--data", str(data), *FLAGS]
    assert main([*common, "--out", str(tmp_path / "plain.json"), "--per-image", str(whole)]) == 0
    assert main([*common, "--crop-face", "--out", str(out), "--per-image", str(cropped)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["face_crop"] == {"detector": "mtcnn", "margin": -0.15, "faces_found": 3, "scored_whole": 1}
    assert json.loads((tmp_path / "plain.json").read_text())["face_crop"] is None
    before, after = p_real_by_file(whole), p_real_by_file(cropped)
    assert after["grey.png"] == pytest.approx(before["grey.png"], abs=1e-6)  # no face: the same image scored
    assert all(after[name] != pytest.approx(before[name], abs=1e-6) for name in ("a.png", "b.png", "c.png"))


def test_cross_evaluation_states_the_crops(trained_run: Path, tmp_path: Path) -> None:
    data = photo_folder(tmp_path / "photos")
    out = tmp_path / "table"
    models = ["--model", f"a={trained_run}", "--model", f"b={trained_run}"]
    assert main(["evaluate", *models, "--data", f"photos={data}", "--crop-face", *FLAGS, "--out", str(out)]) == 0
    tables = (out / "tables.md").read_text()
    assert "cut to their largest face (mtcnn, margin -0.15" in tables and "faces found: photos 3/4" in tables
