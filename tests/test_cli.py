"""End to end through the command line: train, evaluate, kill -9 and resume, on generated data."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfdetect.cli import main
from dfdetect.metrics import EVALUATION_KEYS
from tests.conftest import TINY_MODEL_FLAGS, TINY_TRAIN_FLAGS

TRAIN_FLAGS = [*TINY_TRAIN_FLAGS, "--seed", "3"]


def read_history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "own_cnn"
    assert main(["train", "--data", str(tiny_dataset), *TRAIN_FLAGS, "--epochs", "2", "--out", str(run)]) == 0
    return run


def test_train_writes_a_complete_run_folder(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in (
        "config.yaml",
        "history.csv",
        "bad_files.txt",
        "accuracy.png",
        "loss.png",
        "checkpoints/best.safetensors",
        "checkpoints/best.json",
        "checkpoints/last.safetensors",
    ):
        assert (trained_run / name).is_file(), name
    rows = read_history(trained_run)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert list(rows[0]) == [
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "val_auc",
        "seconds",
    ]
    metadata = json.loads((trained_run / "checkpoints" / "best.json").read_text())
    assert metadata["model"] == "own_cnn" and metadata["preprocessing"]["input_size"] == 32
    assert metadata["config"]["batch_size"] == 8 and metadata["dfdetect_version"]


def test_config_yaml_reruns_the_same_configuration(trained_run: Path, tmp_path: Path) -> None:
    from dfdetect.config import load_config

    rerun = load_config(trained_run / "config.yaml", {"out": str(tmp_path / "again")})
    original = load_config(trained_run / "config.yaml")
    assert rerun.replace(out=original.out) == original


def test_evaluate_prints_table_and_writes_exact_keys(
    trained_run: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval" / "metrics.json"
    per_image = tmp_path / "eval" / "per_image.csv"
    code = main(
        [
            "evaluate",
            "--model",
            str(trained_run),
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            "--per-image",
            str(per_image),
            "--workers",
            "0",
        ]
    )
    assert code == 0
    metrics = json.loads(out.read_text())
    assert tuple(metrics) == EVALUATION_KEYS
    assert metrics["n_real"] == 12 and metrics["n_fake"] == 12
    assert (out.parent / "confusion_matrix.png").is_file() and (out.parent / "roc_curve.png").is_file()
    with per_image.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 24 and set(rows[0]) == {"path", "label", "p_real", "prediction"}
    printed = capsys.readouterr().out
    assert "| accuracy | sensitivity | specificity" in printed.replace("model | ", "")
    assert "0 = Fake, 1 = Real" in printed


def test_evaluate_a_plain_real_fake_folder_and_a_checkpoint_file(trained_run: Path, tiny_dataset: Path) -> None:
    checkpoint = trained_run / "checkpoints" / "last.safetensors"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(checkpoint),
                "--data",
                str(tiny_dataset / "Validation"),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert (trained_run / "eval-Validation" / "metrics.json").is_file()


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Train").mkdir()
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "Train: no Fake folder" in capsys.readouterr().err  # Train exists but holds no classes
    assert main(["evaluate", "--model", str(tmp_path / "missing"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such run folder" in err and err.count("\n") == 1
    assert main(["train", "--data", str(tmp_path), "--model", "nope", "--out", str(tmp_path / "r")]) == 2


def test_models_lists_parameter_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    assert "4,853,569" in printed and "7,480,193" in printed


def run_cli(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dfdetect", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tiny_dataset: Path, tmp_path: Path) -> None:
    # The default worker count (one per core): state carried by persistent DataLoader workers, or drawn from the
    # process's generators when they start, must not make a resumed epoch differ from an uninterrupted one.
    flags = [
        "--data",
        str(tiny_dataset),
        *TINY_MODEL_FLAGS,
        "--seed",
        "3",
        "--image-size",
        "64",
        "--epochs",
        "3",
        "--patience",
        "5",
    ]
    reference = tmp_path / "reference"
    assert run_cli("train", *flags, "--out", str(reference)).wait(timeout=300) == 0

    killed = tmp_path / "killed"
    process = run_cli("train", *flags, "--out", str(killed))
    marker = killed / "checkpoints" / "last.json"
    history = killed / "history.csv"  # written just after the checkpoint: epoch 1 is complete once it exists
    deadline = time.monotonic() + 240
    while not history.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)  # during epoch 2
    process.wait(timeout=30)
    assert json.loads(marker.read_text())["epoch"] == 1
    assert len(read_history(killed)) == 1

    resumed = run_cli("train", "--resume", str(killed))
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr.decode()[-2000:]
    assert b"resuming" in stderr

    expected, actual = read_history(reference), read_history(killed)
    assert [row["epoch"] for row in actual] == ["1", "2", "3"]
    for want, got in zip(expected, actual, strict=True):
        for key in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc"):
            assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-5, abs=1e-6), (key, want, got)
