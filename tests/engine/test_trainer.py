"""The trainer's policies, called as a library: early stopping, fine-tuning, torch.compile."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest
import torch

from dfdetect.config import TrainConfig
from dfdetect.engine.checkpoint import initial_weights, load_checkpoint
from dfdetect.engine.device import cpu_has_bf16_units, use_bf16
from dfdetect.engine.trainer import (
    EarlyStopping,
    SmoothedBCEWithLogits,
    build_ema,
    build_optimizer,
    build_scheduler,
    fit,
)
from dfdetect.ensembles import combine
from dfdetect.errors import CheckpointError, ConfigError
from dfdetect.models import create_model
from dfdetect.runtime.torch_backend import load_model
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


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1e-3)
    config = TrainConfig(scheduler="cosine", warmup_epochs=1, epochs=4)
    scheduler, per_step = build_scheduler(optimizer, config, steps_per_epoch=10)
    assert per_step
    rates = []
    for _ in range(40):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1e-3 / 11)  # warm-up starts at lr / (warm-up steps + 1)
    assert rates[:11] == sorted(rates[:11]) and rates[10] == pytest.approx(1e-3)
    assert rates[10:] == sorted(rates[10:], reverse=True)
    assert rates[-1] < 1e-5
    _, per_epoch = build_scheduler(optimizer, TrainConfig(), steps_per_epoch=10)
    assert not per_epoch  # the study's StepLR steps once an epoch


def test_early_stopping_follows_a_score_where_higher_is_better() -> None:
    stopper = EarlyStopping(patience=2, higher_is_better=True)
    assert [stopper.update(auc, epoch) for epoch, auc in enumerate([0.6, 0.7, 0.65, 0.69], start=1)] == [
        True,
        True,
        False,
        False,
    ]
    assert stopper.best_epoch == 2 and stopper.should_stop


def test_label_smoothing_pulls_targets_towards_one_half() -> None:
    logits, labels = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([0.95, 0.05]))
    assert SmoothedBCEWithLogits(0.1)(logits, labels) == pytest.approx(expected.item())
    assert SmoothedBCEWithLogits(0.0)(logits, labels) == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).item()
    )


def test_precision_names() -> None:
    cpu = torch.device("cpu")
    assert not use_bf16("fp32", cpu) and not use_bf16("auto", cpu)  # the study's fp32 on CPU by default
    assert use_bf16("bf16", cpu) == cpu_has_bf16_units()  # never slow emulation on CPUs without bf16 units
    assert use_bf16("auto", torch.device("cuda"))


def test_strong_recipe_options_train_and_keep_the_best_auc_epoch(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(
        tiny_dataset,
        tmp_path / "run",
        epochs=3,
        patience=3,
        lr=1e-2,
        precision="bf16",
        scheduler="cosine",
        warmup_epochs=0.5,
        monitor="val_auc",
        label_smoothing=0.1,
    )
    result = fit(config)
    aucs = [row["val_auc"] for row in result.history]
    assert result.best_epoch == 1 + aucs.index(max(aucs))
    _, metadata, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert metadata["epoch"] == result.best_epoch
    assert result.best_val_loss == result.history[result.best_epoch - 1]["val_loss"]


def test_weight_ema_follows_the_weights_with_its_decay() -> None:
    model = torch.nn.Linear(2, 1)
    ema = build_ema(model, TrainConfig(ema_decay=0.75))
    assert ema is not None and build_ema(model, TrainConfig()) is None  # 0: off
    with torch.no_grad():
        model.weight.fill_(4.0)
        ema.update_parameters(model)  # the first update copies
        model.weight.fill_(8.0)
        ema.update_parameters(model)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.75 * 4.0 + 0.25 * 8.0))
    assert int(ema.n_averaged) == 2


def test_weight_ema_is_what_validation_scores_and_checkpoints_keep(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_dataset, tmp_path / "ema", epochs=2, ema_decay=0.9, lr=1e-2)
    result = fit(config)
    kept, _, train_state = load_checkpoint(tmp_path / "ema" / "checkpoints" / "last.safetensors")
    assert train_state is not None and train_state["ema_updates"] == 2 * 48 // 8  # one update per step
    raw = train_state["raw_model"]
    assert not torch.equal(kept["backbone.0.weight"], raw["backbone.0.weight"])  # the average is kept, not the raw
    best, _, _ = load_checkpoint(tmp_path / "ema" / "checkpoints" / "best.safetensors")
    assert result.model is not None
    assert all(torch.equal(best[key], value) for key, value in result.model.state_dict().items())


def test_a_run_with_weight_ema_resumes_to_the_same_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    straight = fit(tiny_config(tiny_dataset, tmp_path / "straight", epochs=2, ema_decay=0.9))
    interrupted = tiny_config(tiny_dataset, tmp_path / "resumed", epochs=2, ema_decay=0.9)

    def crash_after_the_first_epoch(row: dict[str, float]) -> None:
        raise KeyboardInterrupt  # after epoch 1's checkpoint, as a kill would

    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, on_epoch=crash_after_the_first_epoch)
    resumed = fit(interrupted, resume=True)
    assert [row["val_loss"] for row in resumed.history] == [row["val_loss"] for row in straight.history]
    one, _, state_one = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    two, _, state_two = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.safetensors")
    assert all(torch.equal(one[key], two[key]) for key in one)
    assert state_one is not None and state_two is not None
    assert all(torch.equal(state_one["raw_model"][key], state_two["raw_model"][key]) for key in state_one["raw_model"])


def test_fine_tuning_starts_from_the_given_run_not_from_scratch(tiny_dataset: Path, tmp_path: Path) -> None:
    key = "backbone.0.weight"
    fit(tiny_config(tiny_dataset, tmp_path / "start", lr=5e-2))  # moves the weights far from the seeded init
    start, _, _ = load_checkpoint(tmp_path / "start" / "checkpoints" / "best.safetensors")
    # A rate this small leaves every weight where it started, so the end shows the start.
    config = tiny_config(tiny_dataset, tmp_path / "tuned", lr=1e-9, init=tmp_path / "start")
    fit(config)
    tuned, metadata, _ = load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.safetensors")
    fit(tiny_config(tiny_dataset, tmp_path / "scratch", lr=1e-9))
    scratch, _, _ = load_checkpoint(tmp_path / "scratch" / "checkpoints" / "last.safetensors")
    assert torch.allclose(tuned[key], start[key], atol=1e-6)
    assert not torch.allclose(scratch[key], start[key], atol=1e-2)
    assert metadata["config"]["init"] == str(tmp_path / "start")


def test_fine_tuning_a_shipped_detector_and_what_it_refuses(trained_run: Path) -> None:
    state, _, path = initial_weights(Path("dfdc-lite0"), "efficientnet_lite0")  # fp16 on disk
    model = create_model("efficientnet_lite0")
    model.load_state_dict(state)
    assert model.head[0].weight.dtype == torch.float32 and path.name.startswith("dfdc-lite0-")
    with pytest.raises(CheckpointError, match="an ensemble of 2 networks; .* give --init-member 0 to 1"):
        initial_weights(Path("dfdc-lite0-ens"), "efficientnet_lite0")
    with pytest.raises(CheckpointError, match=r"an ensemble of 2 networks \(member 2 given\)"):
        initial_weights(Path("dfdc-lite0-ens"), "efficientnet_lite0", member=2)
    with pytest.raises(CheckpointError, match="one network, not an ensemble; --init-member"):
        initial_weights(Path("dfdc-lite0"), "efficientnet_lite0", member=0)
    with pytest.raises(CheckpointError, match="weights of 'own_cnn', not of 'efficientnet_lite0'"):
        initial_weights(trained_run, "efficientnet_lite0")


def test_fine_tuning_a_member_of_the_shipped_ensemble() -> None:
    shipped, _ = load_model(Path("dfdc-lite0-ens"))
    for member in (0, 1):
        state, metadata, _ = initial_weights(Path("dfdc-lite0-ens"), "efficientnet_lite0", member=member)
        model = create_model("efficientnet_lite0", image_size=224)
        model.load_state_dict(state)  # strict: every key of one network, none of the other member's
        expected = shipped.members[member].state_dict()
        assert all(torch.equal(value.float(), expected[key].float()) for key, value in model.state_dict().items())
        assert metadata["from_ensemble"]["member"] == member and metadata["preprocessing"]["input_size"] == 224
    first, _, _ = initial_weights(Path("dfdc-lite0-ens"), "efficientnet_lite0", member=0)
    assert not torch.equal(first["head.1.weight"], state["head.1.weight"])  # two different networks


def test_fine_tuning_starts_from_the_chosen_member_of_an_ensemble(
    trained_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    key = "backbone.0.weight"
    fit(tiny_config(tiny_dataset, tmp_path / "start", lr=5e-2))
    combine([trained_run, tmp_path / "start"], tmp_path / "pair")
    config = tiny_config(tiny_dataset, tmp_path / "tuned", lr=1e-9, init=tmp_path / "pair", init_member=1)
    fit(config)
    tuned, metadata, _ = load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.safetensors")
    start, _, _ = load_checkpoint(tmp_path / "start" / "checkpoints" / "best.safetensors")
    other, _, _ = load_checkpoint(trained_run / "checkpoints" / "best.safetensors")
    assert torch.allclose(tuned[key], start[key], atol=1e-6)
    assert not torch.allclose(tuned[key], other[key], atol=1e-2)
    assert metadata["config"]["init_member"] == 1
    with pytest.raises(ConfigError, match="init_member: give init"):
        TrainConfig(init_member=1)


def test_a_wrong_init_fails_before_the_data_is_read(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "no-data-here", tmp_path / "run", init=tmp_path / "no-run-here")
    with pytest.raises(CheckpointError, match="no-run-here: no such run folder"):
        fit(config)
