import json
import logging
from pathlib import Path

import pytest

from dfdetect.cli import main
from dfdetect.experiment import (
    experiment_config,
    machine_description,
    machines_paragraph,
    most_confidently_wrong,
    run_experiment,
)


@pytest.fixture(scope="module")
def experiment(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("experiment")
    overrides = {"epochs": 1, "image_size": 32, "batch_size": 8, "workers": 0}
    outcomes, report = run_experiment(tiny_dataset, ["own_cnn", "efficientnet_lite0"], out, overrides, command="test")
    return out, outcomes, report


def test_report_has_table_figures_and_configs(experiment) -> None:
    out, outcomes, report = experiment
    text = report.read_text()
    assert "| model | accuracy | sensitivity | specificity | auc |" in text
    assert "own_cnn (scratch)" in text and "efficientnet_lite0 (ImageNet)" in text
    assert "0 = Fake, 1 = Real" in text and "Machine:" in text
    for figure in (
        "figures/roc_all.png",
        "figures/examples.png",
        "own_cnn/accuracy.png",
        "own_cnn/test/confusion_matrix.png",
    ):
        assert figure in text and (out / figure).is_file()
    page = report.with_suffix(".html").read_text()
    assert page.count("data:image/png;base64,") >= 8 and "<table>" in page
    assert [o.model for o in outcomes] == ["own_cnn", "efficientnet_lite0"]
    assert all(o.metrics["n_real"] == 12 for o in outcomes)


def test_each_arm_records_its_machine(experiment) -> None:
    _, outcomes, report = experiment
    here = machine_description()
    for outcome in outcomes:
        assert json.loads((outcome.run_dir / "test" / "summary.json").read_text())["machine"] == here
        assert outcome.machine == here
    assert f"Machine: {here}" in report.read_text()  # all arms from this machine: one line


def test_machines_paragraph_names_arms_from_elsewhere() -> None:
    text = machines_paragraph([("a", "GPU box"), ("b", "GPU box"), ("c", None)], "laptop")
    assert text.startswith("Machine, per arm") and "a, b: GPU box" in text and "c: not recorded" in text
    assert text.endswith("Report built on: laptop")
    assert machines_paragraph([("a", "laptop")], "laptop") == "Machine: laptop"


def test_report_gains_intervals_and_calibrated_columns(experiment) -> None:
    _, outcomes, report = experiment
    text = report.read_text()
    assert "| model | ECE (raw) | ECE (calibrated) | Brier | threshold (policy) |" in text
    for outcome in outcomes:
        low, high = outcome.metrics["intervals_95"]["auc"]
        assert low <= outcome.metrics["auc"] <= high
        calibrated = outcome.calibrated_metrics
        assert calibrated is not None and calibrated["calibrated"] and calibrated["threshold_policy"] == "eer"
        assert calibrated["auc"] == pytest.approx(outcome.metrics["auc"], abs=1e-6)  # calibration keeps the ranking


def test_rerun_skips_finished_models(experiment, tiny_dataset: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    out, _, _ = experiment
    before = (out / "own_cnn" / "checkpoints" / "best.safetensors").stat().st_mtime_ns
    code = main(
        [
            "experiment",
            "--data",
            str(tiny_dataset),
            "--models",
            "own_cnn",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--workers",
            "0",
        ]
    )
    assert code == 0
    assert (out / "own_cnn" / "checkpoints" / "best.safetensors").stat().st_mtime_ns == before
    assert "finished earlier, skipping" in caplog.text
    configuration = (out / "report.md").read_text().split("Configuration:")[1]
    assert "batch_size: 8\n" in configuration  # the configuration it was trained with, not this rerun's default


def test_model_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "densenet.yaml"
    path.write_text("lr: 1.0e-4\nbatch_size: 16\n")
    config = experiment_config("densenet121", tmp_path, tmp_path / "out", {"batch_size": 8}, path)
    assert (config.lr, config.batch_size, config.out) == (1e-4, 8, tmp_path / "out" / "densenet121")


def test_most_confidently_wrong_orders_by_confidence(experiment) -> None:
    _, outcomes, _ = experiment
    outcome = outcomes[0]
    outcome.labels[:] = 0
    outcome.scores[:] = 0.1
    outcome.scores[[3, 5, 7]] = [0.6, 0.9, 0.7]
    assert most_confidently_wrong(outcome) == [5, 7, 3]


def test_arms_of_one_model_with_pseudo_fakes_and_a_cross_source_table(tiny_dataset: Path, tmp_path: Path) -> None:
    arm_config = tmp_path / "sbi.yaml"
    arm_config.write_text("pseudo_fakes: sbi,upsample,autoencoder\npseudo_fake_p: 0.5\n")
    flags = ["--epochs", "1", "--image-size", "32", "--batch-size", "8", "--workers", "0"]
    arms = "plain=own_cnn,pseudo=own_cnn"
    held_out = ["--eval", f"other={tiny_dataset / 'Test'}"]
    out = tmp_path / "experiment"
    code = main(
        ["experiment", "--data", str(tiny_dataset), "--models", arms, "--model-config", f"pseudo={arm_config}",
         *held_out, *flags, "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    text = (out / "report.md").read_text()
    assert "## Cross-source generalisation" in text and "| model | data Test | other |" in text
    assert "figures/pseudo_fakes.png" in text and (out / "figures" / "pseudo_fakes.png").is_file()
    assert "pseudo_fakes: sbi,upsample,autoencoder" in (out / "pseudo" / "config.yaml").read_text()
    assert (out / "pseudo" / "autoencoder.safetensors").is_file()  # trained for that arm, and drawn from
    assert "pseudo_fakes: ''" in (out / "plain" / "config.yaml").read_text()
    held = json.loads((out / "plain" / "eval-other" / "metrics.json").read_text())
    assert held["face_crop"]["mode"] == "auto" and "framed `auto` (`--crop-face`" in text
    faces = json.loads((out / "faces.json").read_text())["detectors"]["mtcnn"]  # kept for a rerun to continue
    assert len(faces) == sum(1 for path in (tiny_dataset / "Test").rglob("*") if path.is_file())
