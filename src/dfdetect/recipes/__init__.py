"""Named training recipes that ship with the package: YAML layers between the defaults and --config."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from dfdetect.config import read_yaml
from dfdetect.errors import ConfigError

STUDY = "study"
"""The defaults themselves: the study's recipe, which `dfdetect experiment` reproduces."""


def list_recipes() -> list[str]:
    """Names of the shipped recipes, the study's first."""
    folder = resources.files(__name__)
    return [STUDY, *sorted(Path(entry.name).stem for entry in folder.iterdir() if entry.name.endswith(".yaml"))]


def recipe_path(name: str) -> Path:
    """The YAML file of a shipped recipe."""
    path = Path(str(resources.files(__name__) / f"{name}.yaml"))
    if name == STUDY or not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}; known recipes: {', '.join(list_recipes())}")
    return path


def read_recipe(name: str | None) -> dict[str, Any]:
    """The config keys a recipe sets ({} for none or the study's, which are the defaults)."""
    if name is None or name == STUDY:
        return {}
    return read_yaml(recipe_path(name))
