"""Detectors that ship trained inside the package: fp16 safetensors weights with their metadata beside them.

`dfdetect predict` and `dfdetect serve` use DEFAULT_DETECTOR when no --model is given; `--model NAME` picks
any shipped detector by name, wherever a run folder or checkpoint is accepted. Each has a model card
(the release metadata names it: docs/MODEL_CARD.md for the default) with its training data, command and metrics.
Reading this list needs no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_DETECTOR = "dfdc-lite0-ens"
"""The detector predict and serve use when no --model is given."""


@dataclass(frozen=True)
class ShippedDetector:
    """A trained detector inside the package: its name, version, weights file and release notes."""

    name: str
    version: str
    path: Path
    release: dict[str, Any]

    @property
    def label(self) -> str:
        """`name version`, as every prediction output shows it."""
        return f"{self.name} {self.version}"


def release_label(metadata: dict[str, Any]) -> str | None:
    """`name version` when a checkpoint's metadata says it is a shipped detector's release, else None."""
    release = metadata.get("release") or {}
    return f"{release['name']} {release['version']}" if release else None


def folder() -> Path:
    return Path(str(resources.files(__name__)))


def shipped_detectors() -> list[ShippedDetector]:
    """Every detector shipped in this package, by name."""
    found = []
    for sidecar in sorted(folder().glob("*.json")):
        weights = sidecar.with_suffix(".safetensors")
        release = json.loads(sidecar.read_text(encoding="utf-8")).get("release")
        if release and weights.is_file():
            found.append(ShippedDetector(release["name"], release["version"], weights, release))
    return found


def version_key(version: str) -> tuple[int, ...]:
    """`2.10.0` -> (2, 10, 0), so versions order as numbers, not as text."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def shipped_detector(name: str) -> ShippedDetector | None:
    """The shipped detector called `name` (its newest version), or `name@version` that version, if there is one."""
    wanted, _, version = name.partition("@")
    found = [d for d in shipped_detectors() if d.name == wanted and version in ("", d.version)]
    return max(found, key=lambda detector: version_key(detector.version), default=None)


def default_detector_path() -> Path:
    """The weights of DEFAULT_DETECTOR, or an error that says what to pass instead."""
    from dfdetect.errors import CheckpointError

    detector = shipped_detector(DEFAULT_DETECTOR)
    if detector is None:
        raise CheckpointError(
            f"this installation ships no {DEFAULT_DETECTOR} detector; pass --model RUN_DIR (a run folder, "
            "checkpoint or exported .onnx)"
        )
    return detector.path
