"""Experiment tracking against a real local MLflow store and real TensorBoard event files, read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dfdetect.cli import main
from dfdetect.config import load_config
from dfdetect.errors import ConfigError
from dfdetect.tracking import Tracker, create_tracker, flat_params, numeric
from dfdetect.tuning import tune
from tests.conftest import TINY_TRAIN_FLAGS

mlflow = pytest.importorskip("mlflow")


def test_params_and_metrics_are_flattened_for_trackers() -> None:
    assert flat_params({"lr": 0.001, "augment": {"jpeg_p": 0.1}}) == {"lr": "0.001", "augment.jpeg_p": "0.1"}
    assert numeric({"a": 1, "b": None, "c": float("nan"), "d": [1], "e": True, "f": 0.5}) == {"a": 1.0, "f": 0.5}


def test_train_logs_config_every_epoch_and_artifacts_to_mlflow(tiny_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    flags = ["--data", str(tiny_dataset), *TINY_TRAIN_FLAGS, "--epochs", "2", "--patience", "5", "--lr", "0.003"]
    assert main(["train", *flags, "--out", str(run), "--track", "mlflow"]) == 0
    client = mlflow.tracking.MlflowClient(f"sqlite:///{run / 'mlruns' / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == "dfdetect"]
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "run"
    assert logged.data.params["lr"] == "0.003" and logged.data.params["augment.jpeg_p"] == "0.1"
    history = client.get_metric_history(logged.info.run_id, "val_loss")
    assert [point.step for point in history] == [1, 2]
    assert "best_val_loss" in logged.data.metrics and logged.data.metrics["epochs_run"] == 2
    artifacts = {item.path for item in client.list_artifacts(logged.info.run_id)}
    assert {"config.yaml", "history.csv", "loss.png", "accuracy.png"} <= artifacts
    assert (run / "mlruns" / "artifacts").is_dir()  # the local store keeps its files beside the run


def test_tune_logs_each_trial_as_a_child_of_the_study(tiny_dataset: Path, tmp_path: Path) -> None:
    base = load_config(
        None, {"data": tiny_dataset, "model": "own_cnn", "epochs": 1, "image_size": 32, "workers": 0, "fraction": 0.5}
    )
    out = tmp_path / "tune"
    tune(base, out, trials=2, tracker=create_tracker("mlflow", out))
    client = mlflow.tracking.MlflowClient(f"sqlite:///{out / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dfdetect").experiment_id])
    [study] = [r for r in runs if r.info.run_name == "study-dfdetect"]
    trials = [r for r in runs if r.info.run_name.startswith("trial-")]
    assert len(trials) == 2 and all(r.data.tags["mlflow.parentRunId"] == study.info.run_id for r in trials)
    assert "best_val_loss" in study.data.metrics
    assert {"table1.md", "trials.csv"} <= {item.path for item in client.list_artifacts(study.info.run_id)}


def test_train_writes_tensorboard_events_that_read_back(tiny_dataset: Path, tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    flags = ["--data", str(tiny_dataset), *TINY_TRAIN_FLAGS, "--epochs", "2", "--patience", "5"]
    assert main(["train", *flags, "--out", str(run), "--track", "tensorboard"]) == 0
    events = event_accumulator.EventAccumulator(
        str(run / "tensorboard" / "run"), size_guidance={event_accumulator.IMAGES: 0}
    )
    events.Reload()
    assert [event.step for event in events.Scalars("val_loss")] == [1, 2]
    assert {"loss", "accuracy"} <= set(events.Tags()["images"])
    assert any(tag.startswith("config") for tag in events.Tags()["tensors"])  # the config, as text


def test_failed_runs_are_marked_failed(tmp_path: Path) -> None:
    tracker = create_tracker("mlflow", tmp_path)
    with pytest.raises(RuntimeError), tracker.run("broken", {"lr": 1}):
        raise RuntimeError("boom")
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("dfdetect").experiment_id])
    assert run.info.status == "FAILED"


def test_no_tracker_imports_nothing(tiny_dataset: Path, tmp_path: Path) -> None:
    assert type(create_tracker(None, tmp_path)) is Tracker
    with pytest.raises(ConfigError, match="unknown tracker"):
        create_tracker("wandb", tmp_path)
    code = (
        "import sys; from dfdetect.cli import main; "
        f"main(['train', '--data', {str(tiny_dataset)!r}, *{TINY_TRAIN_FLAGS!r}, '--epochs', '1', "
        f"'--out', {str(tmp_path / 'r')!r}]); "
        "print(sorted(m for m in ('mlflow', 'tensorboard', 'torch.utils.tensorboard') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
