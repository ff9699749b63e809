"""The Python API, used as the README shows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dfdetect
from tests.conftest import tiny_config


def test_load_predict_explain_export(trained_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    detector = dfdetect.load(trained_run, runtime="torch", device="cpu")
    paths = sorted((tiny_dataset / "Test" / "Fake").glob("*.jpg"))[:2]
    image = Image.open(paths[0]).convert("RGB")
    results = detector.predict([paths[0], str(paths[1]), image, np.asarray(image), tmp_path / "missing.jpg"])
    assert [r.error is None for r in results] == [True, True, True, True, False]
    assert results[0].p_fake == pytest.approx(results[2].p_fake, abs=1e-6)  # a path and its decoded image agree
    assert results[2].p_fake == pytest.approx(results[3].p_fake, abs=1e-9)  # PIL image and array agree
    assert all(r.model == "own_cnn" for r in results) and detector.name == "own_cnn"
    assert results[0].noise == results[2].noise == results[3].noise == reported_noise(detector, image)
    noisy = np.clip(np.asarray(image) + np.random.default_rng(0).normal(0, 20, np.asarray(image).shape), 0, 255)
    flagged = detector.predict(noisy.astype(np.uint8))[0]
    assert flagged.noise is not None and flagged.noise > 5 and flagged.caution is not None
    quiet = dfdetect.load(trained_run, runtime="torch", device="cpu", noise_caution=0)
    assert quiet.predict(noisy.astype(np.uint8))[0].caution is None
    with pytest.raises(ValueError, match="noise caution -1: give grey levels"):
        dfdetect.load(trained_run, noise_caution=-1)
    tiny = np.asarray(image.resize((4, 4)))  # under the run's 32 px input
    assert "small input (4 px" in (detector.predict(tiny)[0].caution or "")
    assert "small input (4 px" in (detector.predict(tiny, crop_face="never")[0].caution or "")
    assert dfdetect.load(trained_run, runtime="torch", device="cpu", small_caution=0).predict(tiny)[0].caution is None
    with pytest.raises(ValueError, match="small caution -2: give pixels"):
        dfdetect.load(trained_run, small_caution=-2)
    assert detector.predict(paths[0])[0].path == str(paths[0])  # a single input is a list of one

    explanation = detector.explain(paths[0])
    assert explanation.heatmap.shape == (image.height, image.width)
    assert explanation.heatmap.min() >= 0.0 and explanation.heatmap.max() <= 1.0
    assert explanation.overlay.size == image.size
    assert explanation.prediction.p_fake == pytest.approx(results[0].p_fake, abs=1e-5)
    assert explanation.prediction.noise == results[0].noise

    onnx = detector.export(tmp_path / "model.onnx")
    exported = dfdetect.load(onnx)
    assert exported.predictor.runtime == "onnx"
    assert exported.predict(paths[0])[0].p_fake == pytest.approx(results[0].p_fake, abs=1e-4)
    with pytest.raises(TypeError, match="Grad-CAM"):
        exported.explain(paths[0])


def reported_noise(detector: dfdetect.Detector, image: Image.Image) -> float:
    """The noise every output reports for an image: estimated at the network's input size, to 2 decimals."""
    return round(detector.predictor.input_noise(image), 2)


def test_bad_array_is_a_clear_error(trained_run: Path) -> None:
    detector = dfdetect.load(trained_run, runtime="torch", device="cpu")
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        detector.predict(np.zeros((8, 8), dtype=np.float32))


def test_train_and_evaluate(tiny_dataset: Path, tmp_path: Path) -> None:
    result = dfdetect.train(
        {"data": tiny_dataset, "model": "own_cnn", "image_size": 32, "batch_size": 8, "workers": 0},
        epochs=2,
        out=tmp_path / "run",
    )
    assert result.epochs_run == 2 and (tmp_path / "run" / "checkpoints" / "best.safetensors").is_file()
    again = dfdetect.train(tiny_config(tiny_dataset, tmp_path / "run", epochs=2), resume=True)
    assert again.history == result.history  # a finished run resumes to its end: nothing is trained twice
    evaluation = dfdetect.evaluate(tmp_path / "run", tiny_dataset, "Test", device="cpu", workers=0)
    assert evaluation.metrics["n_real"] + evaluation.metrics["n_fake"] == 24
    assert 0.0 <= evaluation.metrics["auc"] <= 1.0


def test_predict_frames_loose_photos_like_the_command_line(trained_run: Path, tmp_path: Path) -> None:
    from tests.test_evaluation import tight_face_crop
    from tests.test_faces import scene

    detector = dfdetect.load(trained_run, runtime="torch", device="cpu")
    loose, tight = scene(150, 60, 80), tight_face_crop()
    loose.save(tmp_path / "loose.png")
    p_real = {
        mode: [p.p_real for p in detector.predict([tmp_path / "loose.png", loose, tight], crop_face=mode)]
        for mode in ("auto", "always", "never")
    }
    assert p_real["auto"][0] == pytest.approx(p_real["auto"][1], abs=1e-6)  # a path and the image alike
    assert p_real["auto"][:2] == pytest.approx(p_real["always"][:2], abs=1e-6)
    assert p_real["auto"][0] != pytest.approx(p_real["never"][0], abs=1e-6)
    assert p_real["auto"][2] == pytest.approx(p_real["never"][2], abs=1e-6)  # a face crop is scored as it is
    assert p_real["always"][2] != pytest.approx(p_real["never"][2], abs=1e-6)
