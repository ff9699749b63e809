"""Photos with several faces: each face is found and scored, the most fake one decides."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfdetect.cli import main
from dfdetect.photos import draw_faces, predict_photo
from dfdetect.preprocessing import Preprocessing
from dfdetect.runtime.base import BasePredictor
from tests.conftest import FACE_BOX

skimage_data = pytest.importorskip("skimage.data")


class BrightnessPredictor(BasePredictor):
    """P(Real) = mean brightness of the crop: a stand-in model whose verdicts the test can predict."""

    def __init__(self) -> None:
        self.metadata = {"model": "brightness"}
        self.preprocessing = Preprocessing(input_size=64)

    def score_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.array([np.asarray(image, dtype=float).mean() / 255 for image in images])


def two_face_photo(path: Path) -> Path:
    """A 640 x 400 photo: a large bright face on the left, a smaller darkened face on the right."""
    scene = Image.new("RGB", (640, 400), (120, 120, 120))
    face = Image.fromarray(skimage_data.astronaut()).crop(FACE_BOX)
    scene.paste(face.resize((220, 220)), (30, 90))
    dark = Image.eval(face.resize((140, 140)), lambda value: int(value * 0.45))
    scene.paste(dark, (420, 130))
    scene.save(path)
    return path


def test_every_face_is_scored_and_the_most_fake_decides(tmp_path: Path) -> None:
    photo = predict_photo(BrightnessPredictor(), two_face_photo(tmp_path / "two.png"))
    assert photo.row["error"] is None and photo.row["faces_found"] == 2 and len(photo.faces) == 2
    large, small = photo.faces  # largest first
    assert large.box[0] < 320 < small.box[0]  # left face, then right face
    assert small.p_fake > large.p_fake  # the darkened face looks faker to this stand-in model
    assert photo.row["face"] == 1 and photo.row["p_fake"] == pytest.approx(small.p_fake)
    drawn = draw_faces(Image.open(tmp_path / "two.png"), photo.faces, 0.5)
    colours = {tuple(pixel) for pixel in np.asarray(drawn).reshape(-1, 3)}
    assert drawn.size == (640, 400) and (220, 40, 40) in colours  # the most fake face's box, in red


def test_a_photos_caution_weighs_the_size_of_the_face_that_decides(tmp_path: Path) -> None:
    from dfdetect.faces import crop_box
    from dfdetect.photos import score_framed

    image = Image.open(two_face_photo(tmp_path / "two.png")).convert("RGB")
    [framed] = score_framed(BrightnessPredictor(), [image], mode="always")
    sides = [min(right - left, bottom - top) for left, top, right, bottom in (crop_box(image, f) for f in framed.faces)]
    assert framed.sides.tolist() == sides and sides[0] > sides[1] and framed.decisive_side == sides[1]
    predictor = BrightnessPredictor()
    predictor.preprocessing = Preprocessing(input_size=512)  # larger than both faces: the caution is the limit
    predictor.small_caution = (sides[0] + sides[1]) // 2  # between the two faces
    photo = predict_photo(predictor, tmp_path / "two.png")
    assert photo.row["face"] == 1 and photo.row["caution"].startswith(f"small input ({sides[1]} px on its shorter side")
    assert photo.faces[0].caution is None and photo.faces[1].caution == photo.row["caution"]  # each face its own
    assert photo.faces[0].caution_codes == [] and photo.faces[1].caution_codes == ["small"]
    assert photo.row["caution_codes"] == ["small"]
    predictor.small_caution = sides[1]  # the deciding face's side now just holds
    assert predict_photo(predictor, tmp_path / "two.png").row["caution"] is None


def test_photos_without_faces_or_unreadable_are_error_rows(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "grey").save(blank)
    assert "no face found" in predict_photo(BrightnessPredictor(), blank).row["error"]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert "broken.jpg" in predict_photo(BrightnessPredictor(), broken).row["error"]
    assert predict_photo(BrightnessPredictor(), tmp_path / "gone.jpg").row["error"].endswith("no such file")


def test_predict_crop_face_writes_per_face_rows_and_boxes(trained_run: Path, tmp_path: Path, capsys) -> None:
    photo = two_face_photo(tmp_path / "two.png")
    per_face, heatmaps = tmp_path / "faces.csv", tmp_path / "explain"
    flags = ["--crop-face", "--per-face", str(per_face), "--explain", str(heatmaps), "--format", "json"]
    assert main(["predict", "--model", str(trained_run), "--runtime", "torch", str(photo), *flags]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["faces_found"] == 2 and row["box"] and row["face"] in (0, 1)
    with per_face.open() as handle:
        faces = list(csv.DictReader(handle))
    assert [face["face"] for face in faces] == ["0", "1"]
    assert max(float(face["p_fake"]) for face in faces) == pytest.approx(row["p_fake"], abs=1e-6)
    assert float(faces[row["face"]]["noise"]) == pytest.approx(row["noise"], abs=0.005)  # the deciding face's
    assert all(float(face["noise"]) >= 0 for face in faces)
    assert faces[row["face"]]["caution"] == (row["caution"] or "")  # the deciding face's caution is the photo's
    assert faces[row["face"]]["caution_codes"] == " ".join(row["caution_codes"])
    assert (heatmaps / "two.gradcam.png").is_file()


def test_auto_cuts_loose_photos_and_scores_face_crops_and_faceless_images_whole(tmp_path: Path) -> None:
    from dfdetect.photos import predict_photos
    from tests.test_evaluation import tight_face_crop

    tight_face_crop().save(tmp_path / "tight.png")
    Image.new("RGB", (200, 200), "grey").save(tmp_path / "blank.png")
    paths = [two_face_photo(tmp_path / "two.png"), tmp_path / "tight.png", tmp_path / "blank.png"]
    loose, tight, blank = predict_photos(BrightnessPredictor(), paths, mode="auto", batch_size=2)
    assert loose.row["faces_found"] == 2 and loose.row["face"] == 1 and len(loose.faces) == 2
    whole = BrightnessPredictor().predict_paths(paths[1:])
    for photo, faces_found, expected in ((tight, 1, whole[0]), (blank, 0, whole[1])):
        assert photo.row["error"] is None and photo.row["face"] is None and photo.faces == []
        assert photo.row["faces_found"] == faces_found and photo.row["p_real"] == pytest.approx(expected.p_real)


def test_framing_flags_parse_before_paths() -> None:
    from dfdetect.cli import build_parser

    parser = build_parser()
    for flags, mode in (([], "auto"), (["--crop-face"], "always"), (["--no-crop-face"], "never")):
        for command in ("predict", "evaluate"):
            rest = ["photo.jpg"] if command == "predict" else ["--model", "m", "--data", "d"]
            args = parser.parse_args([command, *flags, *rest])
            assert args.crop_face == mode and (command != "predict" or args.paths == ["photo.jpg"])
