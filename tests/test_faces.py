"""Face detection: MTCNN (ported, weights shipped as safetensors) and the Haar cascade, on faces placed at
known places in generated scenes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfdetect.errors import ConfigError
from dfdetect.faces import TRAINING_MARGIN, Face, crop_face, crop_largest_face, detect_faces
from dfdetect.mtcnn import MTCNN, weights_path

skimage_data = pytest.importorskip("skimage.data")

FACE_BOX = (150, 40, 330, 220)  # the astronaut's head in skimage's 512 x 512 photo (public domain, NASA)


def scene(face_size: int, left: int, top: int, size: tuple[int, int] = (640, 480), seed: int = 0) -> Image.Image:
    """A textured background with the astronaut's face pasted at (left, top), `face_size` pixels across."""
    generator = np.random.default_rng(seed)
    coarse = generator.integers(60, 200, (size[1] // 40, size[0] // 40, 3), dtype=np.uint8)
    background = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    face = Image.fromarray(skimage_data.astronaut()).crop(FACE_BOX).resize((face_size, face_size))
    background.paste(face, (left, top))
    return background


def centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


@pytest.mark.parametrize(("face_size", "left", "top"), [(60, 40, 300), (120, 400, 60), (240, 200, 120)])
def test_mtcnn_finds_a_placed_face_where_it_is(face_size: int, left: int, top: int) -> None:
    faces = detect_faces(scene(face_size, left, top), "mtcnn")
    assert len(faces) == 1
    # The head crop is 180 px around a face of about 90 x 110: the face's centre sits near the crop's centre.
    expected = (left + face_size * 0.5, top + face_size * 0.55)
    found = centre(faces[0].box)
    assert abs(found[0] - expected[0]) < face_size * 0.2 and abs(found[1] - expected[1]) < face_size * 0.2
    assert 0.35 * face_size < faces[0].size < 0.9 * face_size and faces[0].score > 0.9


def test_mtcnn_reproduces_the_reference_port_on_the_astronaut() -> None:
    # facenet-pytorch 2.6.0's MTCNN gives this box and score for skimage's astronaut (checked when ported).
    [detection] = MTCNN().detect(skimage_data.astronaut())
    np.testing.assert_allclose(detection.box, (181.0514, 62.1561, 267.7473, 172.0502), atol=0.01)
    assert detection.score == pytest.approx(0.9999977, abs=1e-6)
    left_eye, right_eye, nose, mouth_left, _ = detection.landmarks
    assert left_eye[0] < nose[0] < right_eye[0] and left_eye[1] < nose[1] < mouth_left[1]


def test_no_face_in_faceless_images() -> None:
    generator = np.random.default_rng(1)
    for image in (Image.new("RGB", (300, 200), "grey"), Image.fromarray(skimage_data.coffee())):
        assert detect_faces(image, "mtcnn") == []
    noise = Image.fromarray(generator.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    assert detect_faces(noise, "mtcnn") == []


def test_haar_stays_an_option_and_unknown_detectors_are_named() -> None:
    assert len(detect_faces(scene(160, 200, 100), "haar")) >= 1
    with pytest.raises(ConfigError, match="known: mtcnn, haar"):
        detect_faces(scene(160, 200, 100), "yolo")


def test_crop_adds_the_margin_squares_and_clips() -> None:
    image = Image.new("RGB", (400, 300))
    crop = crop_face(image, Face((100, 100, 200, 180), 1.0), margin=0.3)
    assert crop.size == (160, 160)  # side 100 (the larger edge) x 1.6, square around the centre (150, 140)
    corner = crop_face(image, Face((0, 0, 100, 100), 1.0), margin=0.3)
    assert corner.size == (130, 130)  # the 160-px square around (50, 50), clipped at the top-left border
    cropped = crop_largest_face(scene(120, 400, 60), detector="mtcnn")
    assert abs(cropped.width - cropped.height) <= 1


def test_weights_ship_as_safetensors() -> None:
    assert weights_path().suffix == ".safetensors" and weights_path().stat().st_size < 3 * 2**20
    assert (weights_path().parent / "LICENSE-facenet-pytorch.md").is_file()


def test_a_margin_of_minus_one_half_or_less_is_refused() -> None:
    with pytest.raises(ValueError, match="above -0.5"):
        crop_face(Image.new("RGB", (100, 100)), Face((10, 10, 60, 60), 1.0), margin=-0.5)
    assert crop_face(Image.new("RGB", (100, 100)), Face((10, 10, 60, 60), 1.0), margin=-0.15).size == (35, 35)


def test_the_training_margin_matches_the_training_crops(real_data: Path) -> None:
    """The DFDC crops the shipped detector learned from are tighter than MTCNN's box; `auto` judges framing by them."""
    ratios = []
    for path in sorted((real_data / "Train" / "Real").glob("*.jpg"))[:30]:
        image = Image.open(path).convert("RGB")
        faces = detect_faces(image, "mtcnn")
        if faces:
            ratios.append(image.width / faces[0].size)
    assert len(ratios) >= 25
    assert abs(float(np.median(ratios)) - (1 + 2 * TRAINING_MARGIN)) < 0.1


def test_face_cropper_finds_each_box_once_and_scores_faceless_images_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dfdetect import faces
    from dfdetect.faces import FaceCropper, crop_box

    paths = [tmp_path / "loose.png", tmp_path / "small.png", tmp_path / "grey.png"]
    scene(160, 240, 120).save(paths[0])
    scene(90, 60, 300, seed=1).save(paths[1])
    Image.new("RGB", (320, 240), "grey").save(paths[2])
    cropper = FaceCropper(margin=-0.15)
    boxes = cropper.boxes_of(paths, max_pixels=10**7)
    for path in paths[:2]:
        image = Image.open(path)
        [face] = detect_faces(image, "mtcnn")
        assert boxes[path] == crop_box(image, face, -0.15)
        left, top, right, bottom = boxes[path]
        assert right - left == pytest.approx(0.7 * face.size, abs=1) and abs((right - left) - (bottom - top)) <= 1
    assert boxes[paths[2]] is None
    expected = {"mode": "always", "detector": "mtcnn", "margin": -0.15, "cropped": 2, "already_framed": 0}
    assert cropper.summary(paths) == {**expected, "no_face": 1}

    def no_second_search(*_: object) -> None:
        raise AssertionError("a box is found once per image")

    monkeypatch.setattr(faces, "largest_face", no_second_search)
    assert cropper.boxes_of(paths[::-1], max_pixels=10**7) == {path: boxes[path] for path in paths[::-1]}


def test_auto_judges_framing_at_the_training_margin_whatever_the_crop_margin() -> None:
    from dfdetect.faces import AUTO_CROP_BELOW, Detection, FaceCropper, crop_box

    size, face = (320, 300), Face((100, 100, 200, 200), 1.0)  # a 100 px face
    assert AUTO_CROP_BELOW * min(size) > 100 * (1 + 2 * TRAINING_MARGIN)  # its training-framed crop: loosely framed
    loose = FaceCropper("auto", margin=0.5)  # a 200 px crop, 0.67 of the side: framed, were it judged at 0.5
    loose.detections[Path("photo.png")] = Detection(size, face)
    assert loose.box(Path("photo.png")) == crop_box(size, face, 0.5)
    filled = FaceCropper("auto", margin=-0.3)  # a face that fills its image stays whole however tight the crop
    filled.detections[Path("crop.png")] = Detection((120, 120), Face((-20, -20, 140, 140), 1.0))  # as DFDC's
    assert filled.box(Path("crop.png")) is None


def test_faces_file_serves_a_later_cropper_of_any_framing_and_looks_again_only_at_changed_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dfdetect import faces
    from dfdetect.faces import FaceCropper

    paths = [tmp_path / "loose.png", tmp_path / "tight.png", tmp_path / "grey.png"]
    scene(160, 240, 120).save(paths[0])
    scene(280, -30, -30, size=(220, 220), seed=1).save(paths[1])  # the face fills the image: `auto` leaves it whole
    Image.new("RGB", (320, 240), "grey").save(paths[2])
    file = tmp_path / "faces.json"
    first = FaceCropper("always", margin=-0.15, faces_file=file)
    first.boxes_of(paths, max_pixels=10**7)
    assert file.is_file()
    reference = FaceCropper("auto", margin=0.1)  # no file: finds every face itself
    expected = reference.boxes_of(paths, max_pixels=10**7)
    assert expected[paths[0]] is not None and expected[paths[1]] is None and expected[paths[2]] is None

    searched: list[str] = []
    real_largest_face = faces.largest_face

    def counted(image: Image.Image, detector: str = "mtcnn") -> faces.Face | None:
        searched.append(detector)
        return real_largest_face(image, detector)

    monkeypatch.setattr(faces, "largest_face", counted)
    later = FaceCropper("auto", margin=0.1, faces_file=file)
    assert later.boxes_of(paths, max_pixels=10**7) == expected
    assert later.summary(paths) == reference.summary(paths)
    assert searched == []
    os.utime(paths[0], ns=(0, 0))  # copied again: another modification time, the same bytes; served from the file
    assert FaceCropper("auto", margin=0.1, faces_file=file).boxes_of(paths, max_pixels=10**7) == expected
    assert searched == []

    Image.new("RGB", (300, 200), "white").save(paths[2])  # a changed file is looked at again, and only it
    again = FaceCropper("always", margin=-0.15, faces_file=file)
    again.boxes_of(paths, max_pixels=10**7)
    assert searched == ["mtcnn"]
    assert again.detections[paths[2]] == faces.Detection((300, 200), None)
    searched.clear()
    FaceCropper("always", "haar", faces_file=file).boxes_of(paths[:1], max_pixels=10**7)  # another detector's faces
    assert searched == ["haar"]
    assert FaceCropper("always", margin=-0.15, faces_file=file).boxes_of(paths, max_pixels=10**7) == first.boxes_of(
        paths, 10**7
    )
    assert searched == ["haar"]  # the MTCNN entries survived the haar run's write


def test_an_unreadable_faces_file_is_an_error_naming_it(tmp_path: Path) -> None:
    from dfdetect.errors import DatasetError
    from dfdetect.faces import FaceCropper

    image = tmp_path / "grey.png"
    Image.new("RGB", (64, 64), "grey").save(image)
    file = tmp_path / "faces.json"
    for text in ("{not json", '{"format": 99}'):
        file.write_text(text)
        with pytest.raises(DatasetError, match="faces.json"):
            FaceCropper(faces_file=file).boxes_of([image], max_pixels=10**7)
