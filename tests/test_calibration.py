"""Temperature scaling and threshold policies on hand-made scores, and stored with a model end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dfdetect.calibration import apply_temperature, calibrate, fit_temperature, sigmoid, threshold_for
from dfdetect.cli import main
from dfdetect.engine.checkpoint import load_checkpoint
from dfdetect.errors import ConfigError
from dfdetect.evaluation import calibrate_checkpoint, score_split
from dfdetect.metrics import expected_calibration_error
from dfdetect.runtime.export import export_onnx
from dfdetect.runtime.onnx_backend import OnnxPredictor
from dfdetect.runtime.torch_backend import TorchPredictor


def over_confident(n: int = 4000, factor: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z), scores sigmoid(factor * z): right ranking, probabilities too extreme."""
    generator = np.random.default_rng(seed)
    z = generator.normal(0, 1.5, n)
    labels = (generator.random(n) < sigmoid(z)).astype(int)
    return labels, sigmoid(factor * z)


def test_temperature_undoes_over_confidence_and_lowers_ece() -> None:
    labels, scores = over_confident(factor=3.0)
    temperature = fit_temperature(labels, scores)
    assert temperature == pytest.approx(3.0, rel=0.1)
    calibrated = apply_temperature(scores, temperature)
    assert expected_calibration_error(labels, calibrated) < expected_calibration_error(labels, scores) / 3
    assert roc_auc_score(labels, calibrated) == pytest.approx(roc_auc_score(labels, scores), abs=1e-4)  # ranking kept
    np.testing.assert_array_equal(apply_temperature(scores, 1.0), scores)


def test_threshold_policies_on_hand_made_scores() -> None:
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.3, 0.4, 0.5, 0.65])
    assert threshold_for("0.5", labels, scores) == 0.5
    # At most 20% of the 5 real faces may be called fake: one (0.2) falls below 0.6, the next real score.
    assert threshold_for("fpr:0.2", labels, scores) == 0.6
    assert threshold_for("fpr:0.01", labels, scores) == 0.2  # none of them: the lowest real score
    # At 0.6: one real called fake (1/5) and one fake called real (0.65: 1/5): equal error rates.
    assert threshold_for("eer", labels, scores) == 0.6
    assert threshold_for("balanced", labels, scores) == 0.6  # 4/5 right on each class, the best here
    assert threshold_for("cost:1", labels, scores) == threshold_for("balanced", labels, scores)
    # A real face called fake costs 4: at 0.2 no real is called fake and 4 of 5 fakes are called real
    # (4 * 0 + 4/5), cheaper than 0.6 (4 * 1/5 + 1/5) or 0.1 (every fake called real).
    assert threshold_for("cost:4", labels, scores) == 0.2
    # A fake face called real costs 3 times more: at 0.7 every fake is called fake and 2 of 5 reals are called
    # fake (2/5 / 3 + 0), cheaper than 0.6 or 0.65 (1/5 / 3 + 1/5).
    assert threshold_for("cost:0.3333", labels, scores) == 0.7
    with pytest.raises(ValueError, match="unknown threshold policy"):
        threshold_for("youden", labels, scores)
    for bad in ("cost:0", "cost:-1", "cost:inf", "cost:two", "fpr:x"):
        with pytest.raises(ValueError, match=f"threshold policy '{bad}'"):
            threshold_for(bad, labels, scores)
    with pytest.raises(ValueError, match="both real and fake"):
        threshold_for("eer", np.ones(3, dtype=int), np.array([0.2, 0.5, 0.9]))


def test_calibrate_reports_every_policy_and_the_one_used() -> None:
    labels, scores = over_confident()
    calibration = calibrate(labels, scores, policy="fpr:0.01")
    assert calibration.policy == "fpr:0.01" and calibration.threshold == calibration.thresholds["fpr:0.01"]
    assert set(calibration.thresholds) == {"0.5", "eer", "balanced", "fpr:0.01", "cost:2"}
    assert calibration.ece_after < calibration.ece_before


def test_calibration_is_stored_used_and_exported(
    trained_run: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    with pytest.raises(ConfigError, match="never on Test"):
        calibrate_checkpoint(run, tiny_dataset, "Test", device="cpu", workers=0)
    assert main(["calibrate", "--model", str(run), "--data", str(tiny_dataset), "--policy", "balanced",
                 "--device", "cpu", "--workers", "0"]) == 0  # fmt: skip
    _, metadata, _ = load_checkpoint(run / "checkpoints" / "best.safetensors")
    stored = metadata["calibration"]
    assert stored["policy"] == "balanced" and stored["split"].endswith("/Validation")

    predictor = TorchPredictor.from_checkpoint(run, device="cpu")
    assert predictor.temperature == stored["temperature"] and predictor.threshold == stored["threshold"]
    assert predictor.describe()["calibrated"] and predictor.threshold_policy == "balanced"
    assert TorchPredictor.from_checkpoint(run, device="cpu", threshold=0.3).threshold == 0.3  # --threshold wins
    assert TorchPredictor.from_checkpoint(run, device="cpu", threshold="0.3").threshold_policy == "given"
    other = TorchPredictor.from_checkpoint(run, device="cpu", threshold="cost:2")  # another stored policy, by name
    assert (other.threshold, other.threshold_policy) == (stored["thresholds"]["cost:2"], "cost:2")
    unknown = r"'cost:7'.*it stores 0.5, eer, balanced, fpr:0.01, cost:2.*--policy POLICY.*cost:C"
    with pytest.raises(ConfigError, match=unknown):
        TorchPredictor.from_checkpoint(run, device="cpu", threshold="cost:7")
    with pytest.raises(ConfigError, match="'eer'.*it is not calibrated"):
        TorchPredictor.from_checkpoint(trained_run, device="cpu", threshold="eer")
    image = sorted((tiny_dataset / "Test" / "Real").glob("*.jpg"))[0]
    flags = ["--model", str(run), "--device", "cpu", "--format", "json"]
    assert main(["predict", str(image), *flags, "--threshold", "eer"]) == 0
    assert main(["predict", str(image), *flags, "--threshold", "youden"]) == 2  # named, not a traceback
    assert "threshold 'youden': neither a number nor a threshold policy stored" in capsys.readouterr().err
    [result] = predictor.predict_paths([image])
    assert result.calibrated is True
    raw = TorchPredictor.from_checkpoint(trained_run, device="cpu").predict_paths([image])[0]
    assert raw.calibrated is False
    assert result.p_real == pytest.approx(apply_temperature(np.array([raw.p_real]), stored["temperature"])[0])

    evaluation = score_split(predictor, tiny_dataset, "Test", workers=0)
    assert evaluation.metrics["threshold_policy"] == "balanced" and evaluation.metrics["calibrated"] is True
    assert evaluation.metrics["threshold"] == stored["threshold"]
    chosen = score_split(predictor, tiny_dataset, "Test", workers=0, threshold="fpr:0.01").metrics
    assert (chosen["threshold"], chosen["threshold_policy"]) == (stored["thresholds"]["fpr:0.01"], "fpr:0.01")
    policies = evaluation.metrics["policies"]
    assert set(policies) == set(stored["thresholds"]) and policies["0.5"]["threshold"] == 0.5

    onnx = OnnxPredictor(export_onnx(run, tmp_path / "model.onnx"))
    assert onnx.metadata["calibration"] == stored and onnx.threshold == stored["threshold"]
    assert OnnxPredictor(tmp_path / "model.onnx", threshold="eer").threshold == stored["thresholds"]["eer"]
    assert onnx.predict_paths([image])[0].p_real == pytest.approx(result.p_real, abs=1e-4)


def test_a_detector_keeps_its_own_small_input_limit(trained_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    """`calibrate --small-caution PX` stores the detector's own limit; every backend uses it, --small-caution wins."""
    from PIL import Image

    from dfdetect.quality import SMALL, SMALL_CAUTION
    from dfdetect.runtime import load_predictor

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    with pytest.raises(ConfigError, match="small caution -1"):
        calibrate_checkpoint(run, tiny_dataset, small_caution=-1, device="cpu", workers=0)
    assert main(["calibrate", "--model", str(run), "--data", str(tiny_dataset), "--small-caution", "20",
                 "--device", "cpu", "--workers", "0"]) == 0  # fmt: skip
    assert load_checkpoint(run / "checkpoints" / "best.safetensors")[1]["calibration"]["small_caution"] == 20
    small = tmp_path / "small.jpg"  # 24 px: under the default limit (48, or the 32 px input), over the stored 20
    Image.open(sorted((tiny_dataset / "Test" / "Real").glob("*.jpg"))[0]).resize((24, 24)).save(small)

    def codes(predictor) -> list[str]:
        return predictor.predict_paths([small])[0].caution_codes

    assert TorchPredictor.from_checkpoint(trained_run, device="cpu").small_caution == SMALL_CAUTION
    assert codes(TorchPredictor.from_checkpoint(trained_run, device="cpu")) == [SMALL]  # not calibrated: default
    assert TorchPredictor.from_checkpoint(run, device="cpu").small_caution == 20
    assert codes(TorchPredictor.from_checkpoint(run, device="cpu")) == []
    assert codes(load_predictor(run, runtime="torch", device="cpu", small_caution=30)) == [SMALL]  # the flag wins
    onnx = OnnxPredictor(export_onnx(run, tmp_path / "model.onnx"))
    assert onnx.small_caution == 20 and codes(onnx) == []
    calibrate_checkpoint(run, tiny_dataset, policy="balanced", device="cpu", workers=0)  # a new policy keeps the limit
    assert TorchPredictor.from_checkpoint(run, device="cpu").small_caution == 20


def test_evaluate_reports_calibration_intervals_and_accepts_one_class(
    trained_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval" / "metrics.json"
    flags = ["--device", "cpu", "--workers", "0", "--bootstrap", "200"]
    assert main(["evaluate", "--model", str(trained_run), "--data", str(tiny_dataset), "--out", str(out), *flags]) == 0
    import json

    metrics = json.loads(out.read_text())
    assert metrics["threshold_policy"] == "0.5" and metrics["calibrated"] is False
    low, high = metrics["intervals_95"]["accuracy"]
    assert low <= metrics["accuracy"] <= high and 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 1
    assert (out.parent / "reliability.png").is_file()

    reals_only = tmp_path / "my-photos"
    shutil.copytree(tiny_dataset / "Test" / "Real", reals_only / "Real")
    one = tmp_path / "one" / "metrics.json"
    assert main(["evaluate", "--model", str(trained_run), "--data", str(reals_only), "--out", str(one), *flags]) == 0
    metrics = json.loads(one.read_text())
    assert metrics["n_fake"] == 0 and metrics["auc"] is None and metrics["specificity"] is None
    assert metrics["accuracy"] == metrics["sensitivity"]  # on real faces alone: 1 - the false-positive rate


def test_evaluate_tabulates_models_by_datasets(trained_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "table"
    models = ["--model", f"a={trained_run}", "--model", f"b={trained_run}"]
    data = ["--data", f"tiny={tiny_dataset}", "--data", f"tiny_test={tiny_dataset / 'Test'}"]
    flags = ["--device", "cpu", "--workers", "0", "--bootstrap", "100", "--out", str(out)]
    assert main(["evaluate", *models, *data, *flags]) == 0
    tables = (out / "tables.md").read_text()
    assert "| model | tiny | tiny_test |" in tables and "## eer" in tables
    assert (out / "b" / "tiny_test" / "metrics.json").is_file()
    row = next(line for line in tables.splitlines() if line.startswith("| a |"))
    assert row.count("[") == 2  # every cell carries its interval
