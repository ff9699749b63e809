from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dfdetect.engine.checkpoint import (
    CheckpointError,
    build_metadata,
    flatten_state,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from dfdetect.models import create_model


def test_round_trip_with_training_state(tmp_path: Path) -> None:
    model = create_model("own_cnn", image_size=32)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 5, 0.1)
    metadata = build_metadata("own_cnn", {"lr": 0.001}, model.preprocessing.to_dict(), 3, {"val_loss": 0.5})
    path = tmp_path / "checkpoints" / "last.safetensors"
    save_checkpoint(
        path,
        model.state_dict(),
        metadata,
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
    )
    state, loaded_metadata, train_state = load_checkpoint(path)
    assert loaded_metadata["epoch"] == 3 and loaded_metadata["class_map"] == {"0": "Fake", "1": "Real"}
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())
    restored = torch.optim.Adam(model.parameters())
    restored.load_state_dict(train_state["optimizer"])
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert (path.with_suffix(".json")).is_file()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_flatten_unflatten_preserves_int_keys_and_tuples() -> None:
    tree = {0: {"step": torch.tensor(2.0)}, "groups": [{"betas": (0.9, 0.99), "params": [0, 1]}], "x": None}
    tensors, skeleton = flatten_state(tree, "s")
    back = unflatten_state(skeleton, tensors)
    assert set(back) == {0, "groups", "x"} and torch.equal(back[0]["step"], torch.tensor(2.0))
    assert back["groups"][0]["betas"] == [0.9, 0.99]


def test_a_plain_safetensors_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match="without dfdetect metadata"):
        load_checkpoint(path)


def test_corrupt_checkpoint_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_checkpoint(path)


def test_run_folder_resolves_to_its_best_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.safetensors").write_bytes(b"")
    assert resolve_checkpoint(tmp_path) == tmp_path / "checkpoints" / "best.safetensors"
    with pytest.raises(CheckpointError, match="no such run folder"):
        resolve_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="is it a run folder"):
        resolve_checkpoint(tmp_path / "checkpoints")
