import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfdetect.cli import main
from dfdetect.preprocessing import Preprocessing
from dfdetect.runtime import expand_paths, preprocess_numpy
from dfdetect.runtime.torch_backend import TorchPredictor


def test_expand_paths_files_folders_globs(tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tiny_dataset / "Test"
    found = expand_paths([str(folder)])
    assert len(found) == 24 and all(p.suffix == ".jpg" for p in found)
    assert len(expand_paths([str(folder / "Real" / "*.jpg")])) == 12
    missing = tmp_path / "missing.jpg"
    assert expand_paths([str(missing), str(missing)]) == [missing]  # kept once, reported later
    (tmp_path / "notes.txt").write_text("not a picture")
    with caplog.at_level("INFO", logger="dfdetect.runtime.base"):
        assert expand_paths([str(tmp_path)]) == []
    assert f"{tmp_path}: skipped 1 file(s) that are not .avi" in caplog.text and "e.g. notes.txt" in caplog.text


def test_predict_paths_keeps_order_and_reports_bad_files(trained_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    predictor = TorchPredictor.from_checkpoint(trained_run, device="cpu")
    good = sorted((tiny_dataset / "Test" / "Fake").glob("*.jpg"))[:3]
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    results = predictor.predict_paths([good[0], text, tmp_path / "gone.jpg", *good[1:]], batch_size=2)
    assert [r.path for r in results] == [str(p) for p in [good[0], text, tmp_path / "gone.jpg", *good[1:]]]
    assert results[1].error and "notes.jpg" in results[1].error and results[1].p_real is None
    assert "no such file" in (results[2].error or "")
    ok = [r for r in results if r.error is None]
    assert len(ok) == 3 and all(abs(r.p_fake + r.p_real - 1) < 1e-9 for r in ok)
    assert all(r.label == ("real" if r.p_real >= 0.5 else "fake") for r in ok)


def test_numpy_preprocessing_matches_the_torch_transform_closely() -> None:
    import torch

    from dfdetect.data.transforms import build_eval_transform

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    preprocessing = Preprocessing(input_size=64)
    same_size = preprocess_numpy(image, preprocessing)
    assert np.allclose(same_size, build_eval_transform(preprocessing)(image).numpy(), atol=1e-5)
    assert torch.is_tensor(build_eval_transform(preprocessing)(image))


def test_predict_command_formats_and_exit_code(
    trained_run: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = str(tiny_dataset / "Test" / "Real")
    assert main(["predict", "--model", str(trained_run), images, "--format", "jsonl", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    columns = {"path", "label", "p_fake", "p_real", "error", "model", "calibrated", "noise", "caution", "caution_codes"}
    framing = {"faces_found", "face", "box"}  # framing auto (the default) says how each image was framed
    assert len(rows) == 12 and set(rows[0]) == columns | framing
    assert {row["model"] for row in rows} == {"own_cnn"}  # every row says which detector scored it
    out = tmp_path / "scores.csv"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    flags = ["--format", "csv", "--out", str(out), "--no-crop-face"]
    code = main(["predict", "--model", str(trained_run), images, str(bad), *flags])
    assert code == 1  # one image failed
    lines = out.read_text().splitlines()
    header = "path,label,p_fake,p_real,error,model,calibrated,noise,caution,caution_codes"
    assert lines[0] == header and len(lines) == 14 and "bad.png" in lines[-1]
    assert main(["predict", "--model", str(trained_run), images, "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("model: own_cnn; fake when p_fake > 0.500 (threshold policy 0.5)\n") and "p_fake" in table
    assert main(["predict", "--model", str(trained_run), images, "--format", "table", "--threshold", "0.25"]) == 0
    assert "fake when p_fake > 0.750 (threshold policy given)" in capsys.readouterr().out


def test_noisy_inputs_are_flagged_with_their_noise(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    y, x = np.mgrid[0:32, 0:32] / 32  # the run's input size: scored without resizing
    smooth = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20
    noisy = smooth + np.random.default_rng(0).normal(0, 12, smooth.shape)
    for name, pixels in (("smooth.png", smooth), ("noisy.png", noisy)):
        Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8)).save(tmp_path / name)
    images = [str(tmp_path / "smooth.png"), str(tmp_path / "noisy.png")]
    for framing in ([], ["--no-crop-face"]):
        assert main(["predict", "--model", str(trained_run), *images, "--format", "json", *framing]) == 0
        smooth_row, noisy_row = json.loads(capsys.readouterr().out)
        assert smooth_row["noise"] < 1 and smooth_row["caution"] is None and smooth_row["caution_codes"] == []
        assert noisy_row["noise"] > 5 and "noisy input" in noisy_row["caution"]
        assert noisy_row["caution_codes"] == ["noisy"]
    assert main(["predict", "--model", str(trained_run), *images, "--format", "table"]) == 0
    assert "! noise " in (out := capsys.readouterr().out) and "! 1 input(s) with a caution, e.g. noisy input" in out
    assert main(["predict", "--model", str(trained_run), *images, "--format", "json", "--noise-caution", "0"]) == 0
    assert all(row["caution"] is None for row in json.loads(capsys.readouterr().out))  # 0 turns it off
    assert main(["predict", "--model", str(trained_run), *images, "--noise-caution", "-1"]) == 2
    assert "noise caution -1: give grey levels >= 0" in capsys.readouterr().err


def test_small_inputs_are_flagged(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    y, x = np.mgrid[0:32, 0:32] / 32
    smooth = Image.fromarray((np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20).astype(np.uint8))
    for side in (32, 8, 4):  # the run's input is 32 px, under the default 48: its own size is the limit
        smooth.resize((side, side), Image.Resampling.BICUBIC).save(tmp_path / f"side{side}.png")
    images = [str(tmp_path / f"side{side}.png") for side in (32, 8, 4)]

    def cautions(*flags: str) -> list[str | None]:
        assert main(["predict", "--model", str(trained_run), *images, "--format", "json", *flags]) == 0
        rows = json.loads(capsys.readouterr().out)
        codes.append([row["caution_codes"] for row in rows])
        return [row["caution"] for row in rows]

    codes: list[list[list[str]]] = []  # each call's rows' caution_codes

    for framing in ([], ["--no-crop-face"]):
        full, eight, four = cautions(*framing)
        assert full is None and eight is not None and eight.startswith("small input (8 px on its shorter side < 32 px)")
        assert four == (
            "small input (4 px on its shorter side < 32 px): brought up to the network's 32 px it carries little "
            "detail to read, so the score is less reliable"
        )
    assert cautions("--small-caution", "6")[:2] == [None, None]
    assert "(4 px on its shorter side < 6 px)" in (cautions("--small-caution", "6")[2] or "")
    noisy_too = cautions("--noise-caution", "0.001")[2]  # both cautions, joined
    assert noisy_too is not None and noisy_too.startswith(four + "; noisy input (estimated noise")
    assert codes[0] == [[], ["small"], ["small"]] and codes[-1][2] == ["small", "noisy"]  # in the caution's order
    assert cautions("--small-caution", "0") == [None] * 3  # 0 turns it off
    assert main(["predict", "--model", str(trained_run), *images, "--format", "table", "--noise-caution", "0.001"]) == 0
    table = capsys.readouterr().out
    assert "! small, noise " in table and "! 3 input(s) with a caution, e.g. noisy input" in table
    assert main(["predict", "--model", str(trained_run), *images, "--format", "csv", "--noise-caution", "0.001"]) == 0
    assert [row["caution_codes"] for row in csv.DictReader(io.StringIO(capsys.readouterr().out))] == [
        "noisy",
        "small noisy",
        "small noisy",
    ]
    assert main(["predict", "--model", str(trained_run), *images, "--small-caution", "-1"]) == 2
    assert "small caution -1: give pixels >= 0" in capsys.readouterr().err


def test_explain_writes_heatmaps(trained_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    image = sorted((tiny_dataset / "Test" / "Fake").glob("*.jpg"))[0]
    assert (
        main(
            ["predict", "--model", str(trained_run), str(image), "--explain", str(tmp_path / "cam"), "--format", "json"]
        )
        == 0
    )
    heatmap = Image.open(tmp_path / "cam" / f"{image.stem}.gradcam.png")
    assert heatmap.size == Image.open(image).size


def test_crop_face_finds_the_astronauts_face(trained_run: Path, tmp_path: Path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from dfdetect.faces import NoFaceError, crop_largest_face

    photo = Image.fromarray(skimage_data.astronaut())  # 512 x 512, face near the top centre
    face = crop_largest_face(photo)
    assert (80 < face.width < 400 and face.width == face.height) or abs(face.width - face.height) < 40
    with pytest.raises(NoFaceError, match="no face found"):
        crop_largest_face(Image.new("RGB", (200, 200), "gray"), "blank.png")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "gray").save(blank)
    photo_path = tmp_path / "astronaut.png"
    photo.save(photo_path)
    buffer = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, buffer
    try:
        code = main(
            ["predict", "--model", str(trained_run), str(photo_path), str(blank), "--crop-face", "--format", "json"]
        )
    finally:
        sys.stdout = sys_stdout
    rows = json.loads(buffer.getvalue())
    assert code == 1 and rows[0]["error"] is None and "no face found" in rows[1]["error"]
