"""Packaging a run as a shipped detector, on the tiny generated run (the real one is checked in test_shipped)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dfdetect import pretrained
from dfdetect.cli import main
from dfdetect.engine.checkpoint import load_checkpoint, resolve_checkpoint
from dfdetect.errors import CheckpointError
from dfdetect.evaluation import score_split
from dfdetect.metrics import bootstrap_intervals
from dfdetect.pretrained.release import model_card, package_detector, split_report
from dfdetect.quality import SMALL_CAUTION
from dfdetect.runtime import load_predictor
from dfdetect.runtime.torch_backend import TorchPredictor

EXAMPLES = sorted((Path(__file__).parents[1] / "assets" / "examples").glob("*.jpg"))


@pytest.fixture
def packaged(trained_run: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny run packaged as `tiny 0.1.0` into a folder that stands in for the package's."""
    monkeypatch.setattr(pretrained, "folder", lambda: tmp_path)
    release = {"summary": "a test detector", "command": "dfdetect train ...", "card": "docs/MODEL_CARD-tiny.md"}
    return package_detector(
        trained_run, tmp_path, "tiny", "0.1.0", release, tiny_dataset, examples=EXAMPLES, resamples=50
    )


def test_packaged_weights_are_fp16_with_release_metadata(packaged: Path) -> None:
    state, metadata, train_state = load_checkpoint(packaged)
    assert train_state is None
    floats = [value for value in state.values() if value.is_floating_point()]
    assert floats and all(value.dtype == torch.float16 for value in floats)
    release = metadata["release"]
    assert (release["name"], release["version"], release["architecture"]) == ("tiny", "0.1.0", "own_cnn")
    assert set(release["examples"]) == {path.name for path in EXAMPLES}
    for split in ("Validation", "Test"):
        report = release["evaluation"][split]
        low, high = report["intervals_95"]["accuracy"]
        assert low <= report["metrics"]["accuracy"] <= high
    assert json.loads(packaged.with_suffix(".json").read_text())["release"] == release
    card = model_card(release)
    assert card.startswith("# Model card: tiny 0.1.0") and "0 = Fake, 1 = Real" in card
    assert f"under {SMALL_CAUTION} px on their shorter side with a `caution`" in card
    test = release["evaluation"]["Test"]["metrics"]
    assert f"{test['auc']:.3f} [" in card and all(path.name in card for path in EXAMPLES)


def test_the_card_gives_the_detectors_own_small_input_limit(packaged: Path) -> None:
    release = load_checkpoint(packaged)[1]["release"]
    calibration = {"temperature": 1.2, "threshold": 0.4, "policy": "cost:2", "split": "tiny/Validation"}
    card = model_card({**release, "calibration": {**calibration, "ece_before": 0.1, "ece_after": 0.05}})
    assert f"under {SMALL_CAUTION} px on their shorter side with a `caution` (the default limit" in card
    card = model_card(
        {**release, "calibration": {**calibration, "ece_before": 0.1, "ece_after": 0.05, "small_caution": 64}}
    )
    assert (
        "under 64 px on their shorter side with a `caution` (this detector's own limit, measured on tiny/Valid" in card
    )


def test_a_shipped_detector_is_found_by_name_and_scores_as_recorded(packaged: Path) -> None:
    assert [detector.label for detector in pretrained.shipped_detectors()] == ["tiny 0.1.0"]
    assert resolve_checkpoint(Path("tiny")) == packaged == resolve_checkpoint(Path("tiny@0.1.0"))
    with pytest.raises(CheckpointError, match=r"shipped: tiny"):
        resolve_checkpoint(Path("tiny@9.9"))
    predictor = load_predictor(Path("tiny"), runtime="torch", device="cpu")
    recorded = load_checkpoint(packaged)[1]["release"]["examples"]
    results = predictor.predict_paths(EXAMPLES)
    assert {Path(r.path).name: r.p_fake for r in results} == pytest.approx(recorded, abs=1e-6)
    assert {r.model for r in results} == {"tiny 0.1.0"}
    assert predictor.describe()["name"] == "tiny" and predictor.describe()["version"] == "0.1.0"


def test_evaluating_a_shipped_detector_writes_beside_the_caller(
    packaged: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["evaluate", "--model", "tiny", "--data", str(tiny_dataset), "--device", "cpu", "--workers", "0"]) == 0
    assert (work / "eval-tiny" / "eval-Test" / "metrics.json").is_file()
    assert not list(packaged.parent.glob("eval-*"))  # never inside the package folder


def test_an_ensemble_packages_and_scores_as_recorded(
    trained_run: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pretrained, "folder", lambda: tmp_path / "package")
    assert main(["ensemble", "--model", str(trained_run), "--tta", "hflip", "--out", str(tmp_path / "ens")]) == 0
    out = package_detector(tmp_path / "ens", tmp_path / "package", "pair", "1.0.0", {}, examples=EXAMPLES)
    release = load_checkpoint(out)[1]["release"]
    assert (
        release["architecture"].startswith("ensemble of 1 (own_cnn; mean logit)") and "hflip" in release["architecture"]
    )
    results = load_predictor(Path("pair"), runtime="torch", device="cpu").predict_paths(EXAMPLES)
    assert {Path(r.path).name: r.p_fake for r in results} == pytest.approx(release["examples"], abs=1e-6)
    assert "ensemble of 1" in model_card(release)


def test_intervals_are_drawn_at_the_detectors_own_threshold(trained_run: Path, tiny_dataset: Path) -> None:
    predictor = TorchPredictor.from_checkpoint(trained_run, device="cpu")
    evaluation = score_split(predictor, tiny_dataset, "Test", workers=0)
    predictor.threshold = float(np.median(evaluation.scores))  # far from 0.5: labels change with the threshold
    report = split_report(predictor, tiny_dataset, "Test", resamples=50)
    expected = bootstrap_intervals(evaluation.labels, evaluation.scores, predictor.threshold, resamples=50)
    assert report["intervals_95"] == expected and report["metrics"]["threshold"] == predictor.threshold
    assert report["intervals_95"] != bootstrap_intervals(evaluation.labels, evaluation.scores, resamples=50)


def test_a_name_loads_its_newest_version_and_name_at_version_an_older_one(packaged: Path) -> None:
    metadata = json.loads(packaged.with_suffix(".json").read_text())
    for version in ("0.9.0", "0.10.0"):  # 0.10.0 is the newer, though it sorts first as text
        newer = packaged.with_name(f"tiny-{version}.safetensors")
        newer.write_bytes(packaged.read_bytes())
        metadata["release"]["version"] = version
        newer.with_suffix(".json").write_text(json.dumps(metadata))
    assert sorted(d.version for d in pretrained.shipped_detectors()) == ["0.1.0", "0.10.0", "0.9.0"]
    assert pretrained.shipped_detector("tiny").version == "0.10.0"
    assert pretrained.shipped_detector("tiny@0.1.0").version == "0.1.0"
    assert pretrained.shipped_detector("tiny@2.0.0") is None and pretrained.shipped_detector("other") is None


def test_a_new_version_keeps_the_earlier_releases_facts(packaged: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    """tools/package_detector.py --release-from: a recalibrated version keeps the facts and adds to the command."""
    import subprocess
    import sys

    root = Path(__file__).parents[2]
    out, card = tmp_path / "next", tmp_path / "CARD.md"
    out.mkdir()
    command = [sys.executable, str(root / "tools" / "package_detector.py"), str(packaged), "--name", "tiny"]
    command += ["--version", "0.2.0", "--data", str(tiny_dataset), "--resamples", "20", "--out", str(out)]
    command += ["--release-from", str(packaged.with_suffix(".json")), "--command", "dfdetect calibrate ..."]
    done = subprocess.run([*command, "--card", str(card)], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    release = json.loads((out / "tiny-0.2.0.json").read_text())["release"]
    assert (release["version"], release["summary"]) == ("0.2.0", "a test detector")
    assert release["card"] == "docs/MODEL_CARD-tiny.md"  # the earlier card, not the draft written to --card
    assert release["command"] == "dfdetect train ...\ndfdetect calibrate ..."
    assert card.read_text().startswith("# Model card: tiny 0.2.0")
