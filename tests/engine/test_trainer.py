"""The trainer's policies, called as a library: early stopping, fine-tuning, torch.compile."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest
import torch

from dfdetect.config import TrainConfig
from dfdetect.engine.checkpoint import load_checkpoint
from dfdetect.engine.trainer import build_optimizer, fit
from dfdetect.inference import load_model
from dfdetect.models import create_model
from tests.conftest import tiny_config


def test_early_stopping_restores_the_best_epoch(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=30, patience=1, lr=1e-2)
    result = fit(config)
    assert result.stopped_early and result.epochs_run < 30
    assert result.epochs_run == result.best_epoch + 1  # patience 1: one epoch without improvement stops
    losses = [row["val_loss"] for row in result.history]
    assert result.best_val_loss == min(losses)
    best_state, metadata, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert metadata["epoch"] == result.best_epoch
    assert result.model is not None
    assert all(torch.equal(best_state[key], value) for key, value in result.model.state_dict().items())


def test_fine_tuning_policies(tiny_dataset: Path, tmp_path: Path) -> None:
    model = create_model("efficientnet_lite0", pretrained=True, image_size=64)
    groups = build_optimizer(model, TrainConfig(lr=1e-3, backbone_lr_factor=0.1)).param_groups
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", pytest.approx(1e-4)), ("head", 1e-3)]

    config = tiny_config(
        tiny_dataset,
        tmp_path / "frozen",
        model="efficientnet_lite0",
        pretrained=True,
        image_size=64,
        epochs=2,
        patience=5,
        freeze_backbone_epochs=1,
    )
    fit(config)
    reference = create_model("efficientnet_lite0", pretrained=True, image_size=64).state_dict()
    last, metadata, _ = load_checkpoint(tmp_path / "frozen" / "checkpoints" / "last.safetensors")
    assert metadata["epoch"] == 2
    stem = "backbone.network.conv_stem.weight"
    # Epoch 1 trained the head only (BatchNorm statistics frozen too); epoch 2 unfroze the backbone.
    head = "head.0.weight"
    assert not torch.equal(last[head], reference[head])
    assert not torch.equal(last[stem], reference[stem])
    epoch_one = tmp_path / "frozen-1"
    fit(config.replace(out=epoch_one, epochs=1))
    after_one, _, _ = load_checkpoint(epoch_one / "checkpoints" / "last.safetensors")
    assert torch.equal(after_one[stem], reference[stem])
    assert torch.equal(after_one["backbone.network.bn1.running_mean"], reference["backbone.network.bn1.running_mean"])
    assert not torch.equal(after_one[head], reference[head])


def can_compile() -> bool:
    """torch.compile's CPU backend needs a C++ compiler and Python's headers (g++ and python3-dev on Debian)."""
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return (shutil.which("g++") or shutil.which("c++")) is not None and headers.is_file()


@pytest.mark.skipif(not can_compile(), reason="torch.compile on the CPU needs a C++ compiler and Python.h")
def test_compiled_training_matches_eager_and_saves_plain_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    # No dropout: compiled code draws its masks from another generator, so only then are the two runs comparable.
    config = tiny_config(tiny_dataset, tmp_path / "eager", epochs=1, dropout=0.0)
    eager = fit(config)
    torch._dynamo.utils.counters.clear()
    compiled = fit(config.replace(out=tmp_path / "compiled", compile=True))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # it did compile
    # Same data, same order, same augmentation; only rounding differs, and Adam carries it over six steps.
    for key in ("train_loss", "val_loss"):
        assert compiled.history[0][key] == pytest.approx(eager.history[0][key], abs=5e-3), key
    state, metadata, _ = load_checkpoint(tmp_path / "compiled" / "checkpoints" / "best.safetensors")
    assert set(state) == set(create_model("own_cnn", image_size=32, dropout=0.0).state_dict())  # no _orig_mod.
    assert metadata["config"]["compile"] is True
    load_model(tmp_path / "compiled")  # the plain model loads it
