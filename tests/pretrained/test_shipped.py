"""The detector that ships inside the package: present, small, described, and scoring as its card records."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import dfdetect.api
from dfdetect.cli import main
from dfdetect.engine.checkpoint import load_checkpoint
from dfdetect.pretrained import DEFAULT_DETECTOR, shipped_detector, shipped_detectors
from dfdetect.pretrained.release import architecture_of
from dfdetect.runtime import load_predictor
from dfdetect.serving.app import create_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "tests" / "assets" / "examples").glob("*.jpg"))


@pytest.fixture(scope="module")
def shipped():
    detector = shipped_detector(DEFAULT_DETECTOR)
    assert detector is not None, f"{DEFAULT_DETECTOR} is not in src/dfdetect/pretrained/"
    return detector


@pytest.mark.parametrize("shipped", shipped_detectors(), ids=lambda detector: detector.label)
def test_every_shipped_detector_is_small_with_its_card(shipped) -> None:
    assert shipped.path.stat().st_size < 25 * 2**20
    _, metadata, train_state = load_checkpoint(shipped.path)
    assert train_state is None  # weights only
    release = metadata["release"]
    assert (release["name"], release["architecture"], release["weights"]) == (
        shipped.name,
        architecture_of(metadata),
        "fp16",
    )
    assert release["command"].startswith(("dfdetect train", "dfdetect experiment")) and "DFDC" in release["trained_on"]
    assert (ROOT / release["card"]).is_file()
    for split in ("Validation", "Test"):
        report = release["evaluation"][split]
        low, high = report["intervals_95"]["auc"]
        assert low <= report["metrics"]["auc"] <= high
    card = (ROOT / release["card"]).read_text(encoding="utf-8")
    assert f"{report['metrics']['auc']:.3f}" in card  # the card quotes the recorded Test AUC
    assert all(path.name in card for path in EXAMPLES)


@pytest.mark.parametrize("shipped", shipped_detectors(), ids=lambda detector: detector.label)
def test_every_shipped_detector_scores_the_bundled_examples_as_recorded(shipped) -> None:
    recorded = load_checkpoint(shipped.path)[1]["release"]["examples"]
    assert set(recorded) == {path.name for path in EXAMPLES}
    predictor = load_predictor(Path(f"{shipped.name}@{shipped.version}"), runtime="torch", device="cpu")
    scored = {Path(r.path).name: r.p_fake for r in predictor.predict_paths(EXAMPLES)}
    assert scored == pytest.approx(recorded, abs=1e-5)  # as predict shows them (calibrated, if it was calibrated)


def test_predict_and_serve_use_it_when_no_model_is_given(shipped, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(EXAMPLES[0]), "--format", "json", "--runtime", "torch", "--device", "cpu"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["model"] == shipped.label and row["error"] is None
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert f"{DEFAULT_DETECTOR} (default)" in listed
    for detector in shipped_detectors():  # each row gives its Test AUC and the threshold it labels at
        row = next(line for line in listed.splitlines() if line.startswith(f"| {detector.name} "))
        calibration, test = detector.release["calibration"], detector.release["evaluation"]["Test"]["metrics"]
        assert f"| {test['auc']:.3f} | {calibration['policy']} ({calibration['threshold']:.3f}) |" in row
    client = TestClient(create_app(load_predictor(shipped.path, runtime="torch", device="cpu")))
    info = client.get("/v1/model").json()
    assert (info["name"], info["version"]) == (shipped.name, shipped.version)
    with EXAMPLES[0].open("rb") as handle:
        response = client.post("/v1/predict", files={"files": (EXAMPLES[0].name, handle, "image/jpeg")})
    assert response.json()["model"] == shipped.label


@pytest.mark.parametrize("shipped", shipped_detectors(), ids=lambda detector: detector.label)
def test_every_shipped_detector_labels_at_its_stored_policy_and_takes_another_by_name(shipped) -> None:
    calibration = load_checkpoint(shipped.path)[1]["calibration"]
    default = load_predictor(shipped.path, runtime="torch", device="cpu")
    assert (default.threshold, default.threshold_policy) == (calibration["threshold"], calibration["policy"])
    for policy, threshold in calibration["thresholds"].items():  # e.g. --threshold eer: 3.0.0's labels
        chosen = load_predictor(shipped.path, runtime="torch", device="cpu", threshold=policy)
        assert (chosen.threshold, chosen.threshold_policy) == (threshold, policy)


def test_the_api_docstrings_run(shipped) -> None:
    failures, tried = doctest.testmod(dfdetect.api, optionflags=doctest.ELLIPSIS)
    assert tried >= 2 and failures == 0
