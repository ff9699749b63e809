"""Shared fixtures: small generated datasets, so every test runs without the real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfdetect.config import TrainConfig
from dfdetect.data.synthetic import make_synthetic_dataset

TINY_MODEL_FLAGS = ["--model", "own_cnn", "--image-size", "32", "--batch-size", "8"]
TINY_TRAIN_FLAGS = [*TINY_MODEL_FLAGS, "--workers", "0"]
"""Command-line options for a seconds-long training run on `tiny_dataset`."""


def tiny_config(data: Path, out: Path, **changes: object) -> TrainConfig:
    """A seconds-long own_cnn run on `tiny_dataset` (32 px, batch 8, no workers); `changes` override any key."""
    defaults: dict[str, object] = {"model": "own_cnn", "image_size": 32, "batch_size": 8, "workers": 0, "epochs": 1}
    return TrainConfig(data=data, out=out, **{**defaults, **changes})  # type: ignore[arg-type]


REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dfdc-faces"


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train 48 / Validation 24 / Test 24 synthetic 32-pixel images, half Real, half Fake."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    return make_synthetic_dataset(root, {"Train": 48, "Validation": 24, "Test": 24}, image_size=32, seed=1)


@pytest.fixture(scope="session")
def trained_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """own_cnn trained for one epoch on the tiny set (32 px): a real run folder for the tools that use one."""
    from dfdetect.engine.trainer import fit

    run = tmp_path_factory.mktemp("trained") / "own_cnn"
    fit(tiny_config(tiny_dataset, run))
    return run


@pytest.fixture
def real_data() -> Path:
    """The DFDC face crops beside the repository; skips the test where they are absent."""
    if not (REAL_DATA / "Test").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA
