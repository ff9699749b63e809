"""`dfdetect evaluate --crop-face`: photos cut to their largest face, framed like the training crops, before
scoring; in auto mode (the default) only loosely framed ones (the other evaluate behaviours are tested with
calibration, in test_calibration.py)."""

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
from dfdetect.faces import DEFAULT_MARGIN, crop_box, detect_faces
from tests.test_faces import scene, skimage_data

FLAGS = ["--device", "cpu", "--workers", "0", "--bootstrap", "0"]


def tight_face_crop() -> Image.Image:
    """The astronaut's face cut at its MTCNN box: framed like a training face crop."""
    astronaut = Image.fromarray(skimage_data.astronaut())
    return astronaut.crop(crop_box(astronaut, detect_faces(astronaut)[0], margin=0.0)).resize((160, 160))


def photo_folder(root: Path) -> Path:
    """Real: two loosely framed faces and a tight face crop; Fake: one loose face and a faceless grey image."""
    for label in ("Real", "Fake"):
        (root / label).mkdir(parents=True)
    scene(150, 60, 80).save(root / "Real" / "a.png")
    scene(110, 300, 200, seed=2).save(root / "Real" / "b.png")
    tight_face_crop().save(root / "Real" / "tight.png")
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


def test_evaluate_crops_loose_photos_by_default_and_every_face_when_asked(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dfdetect import faces

    data = photo_folder(tmp_path / "photos")
    faces_file = ["--faces-file", str(tmp_path / "faces.json")]
    mode_flags = {"never": ["--no-crop-face"], "always": ["--crop-face", *faces_file], "auto": faces_file}
    scores, summaries = {}, {}
    for mode, flags in mode_flags.items():
        out, per_image = tmp_path / mode / "metrics.json", tmp_path / f"{mode}.csv"
        arguments = ["evaluate", "--model", str(trained_run), "--data", str(data), *FLAGS, *flags]
        assert main([*arguments, "--out", str(out), "--per-image", str(per_image)]) == 0
        summaries[mode] = json.loads(out.read_text())["face_crop"]
        scores[mode] = p_real_by_file(per_image)
        if mode == "always":  # `auto` frames the photos from the faces `always` found and kept in the file
            monkeypatch.setattr(faces, "largest_face", None)
    common = {"detector": "mtcnn", "margin": DEFAULT_MARGIN, "no_face": 1}
    assert summaries["never"] is None
    assert summaries["always"] == {**common, "mode": "always", "cropped": 4, "already_framed": 0}
    assert summaries["auto"] == {**common, "mode": "auto", "cropped": 3, "already_framed": 1}
    for name in ("a.png", "b.png", "c.png"):  # loosely framed: cut in both modes
        assert scores["auto"][name] == pytest.approx(scores["always"][name], abs=1e-6)
        assert scores["auto"][name] != pytest.approx(scores["never"][name], abs=1e-6)
    for name in ("tight.png", "grey.png"):  # a face crop, and an image without a face: scored as they are
        assert scores["auto"][name] == pytest.approx(scores["never"][name], abs=1e-6)
    assert scores["always"]["tight.png"] != pytest.approx(scores["never"]["tight.png"], abs=1e-6)


def test_cross_evaluation_states_the_crops(trained_run: Path, tmp_path: Path) -> None:
    data = photo_folder(tmp_path / "photos")
    out = tmp_path / "table"
    models = ["--model", f"a={trained_run}", "--model", f"b={trained_run}"]
    assert main(["evaluate", *models, "--data", f"photos={data}", "--crop-face", *FLAGS, "--out", str(out)]) == 0
    tables = (out / "tables.md").read_text()
    framing = f"Framing `always` (`--crop-face`): all cut to their largest face (mtcnn, margin {DEFAULT_MARGIN:+.2f} of"
    assert framing in tables
    assert "cut: photos 4/5 (1 without a face)" in tables
    scores = {name: p_real_by_file(out / name / "photos" / "predictions.csv") for name in ("a", "b")}
    assert len(scores["a"]) == 5 and scores["a"] == scores["b"]  # every image's score, the same model twice
