from pathlib import Path

import pytest

from dfdetect.config import TrainConfig, build_config, load_config
from dfdetect.errors import ConfigError
from dfdetect.recipes import list_recipes, read_recipe, recipe_path


def test_shipped_recipes_are_listed_and_valid() -> None:
    assert list_recipes()[:2] == ["study", "strong"]
    assert read_recipe("study") == {} and read_recipe(None) == {}  # the study's recipe is the defaults
    strong = build_config(read_recipe("strong"))
    assert strong != TrainConfig()
    assert (strong.model, strong.pretrained, strong.scheduler, strong.monitor) == (
        "efficientnet_lite0",
        True,
        "cosine",
        "val_auc",
    )
    assert recipe_path("strong").is_file()  # shipped as package data


def test_unknown_recipe_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known recipes: study, strong"):
        read_recipe("stronger")


def test_recipe_sits_under_the_config_file_and_the_command_line(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text("epochs: 2\nlr: 1.0e-4\n")
    config = load_config(config_file, {"lr": 5e-5}, base=read_recipe("strong"))
    assert config.epochs == 2  # the file beats the recipe
    assert config.lr == 5e-5  # the command line beats both
    assert config.scheduler == "cosine"  # the rest comes from the recipe
