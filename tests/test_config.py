from pathlib import Path

import pytest

from dfdetect.config import ConfigError, TrainConfig, load_config, save_config


def test_defaults_are_the_studys_recipe() -> None:
    config = TrainConfig()
    assert (config.lr, config.weight_decay, config.dropout, config.batch_size) == (1e-3, 7e-4, 0.35, 128)
    assert (config.lr_step_size, config.lr_gamma, config.patience, config.image_size) == (5, 0.1, 2, 256)


def test_yaml_overrides_defaults_and_command_line_overrides_yaml(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("lr: 1e-4\nbatch_size: 32\naugment:\n  jpeg_p: 0.5\n  blur_p: 0.2\n")
    config = load_config(path, {"batch_size": 64, "augment.blur_p": 0.0, "epochs": None})
    assert config.lr == 1e-4  # YAML reads 1e-4 as a string; it is coerced
    assert config.batch_size == 64
    assert config.augment.jpeg_p == 0.5 and config.augment.blur_p == 0.0
    assert config.epochs == TrainConfig().epochs  # None means "not given"


def test_saved_config_reloads_identically(tmp_path: Path) -> None:
    config = load_config(None, {"data": "data", "out": "runs/x", "model": "densenet121", "augment.hflip_p": 0.1})
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": 1}, "unknown config key.*learning_rate"),
        ({"augment.nope": 1}, "augment.nope"),
        ({"dropout": 1.5}, "dropout"),
        ({"epochs": "many"}, "epochs: invalid value"),
        ({"fraction": 0}, "fraction"),
        ({"device": "tpu"}, "device"),
        ({"compile": "maybe"}, "compile"),
        ({"ema_decay": 1.0}, "ema_decay must be in"),
    ],
)
def test_bad_values_are_named(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
