"""`dfdetect ensemble`: trained detectors (or one, with test-time flips) combined into one checkpoint.

The result is a run folder like a training run's (`checkpoints/best.safetensors` + `.json`), so calibrate,
evaluate, predict, serve, export and tools/package_detector.py take it as they take a single network. Calibration
is not carried over from the members: the averaged logit is a new score, so calibrate the ensemble itself.

An ensemble given as a member is taken apart: all its networks join (so the shipped default can be extended with a
network of one's own), or with `SOURCE#N` network N alone (so one of its networks can be paired with another).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfdetect.engine.checkpoint import build_metadata, resolve_checkpoint, save_checkpoint
from dfdetect.errors import ConfigError
from dfdetect.models.detector import Detector
from dfdetect.models.ensemble import ENSEMBLE, Ensemble
from dfdetect.run_folder import RunFolder
from dfdetect.runtime.torch_backend import load_model

logger = logging.getLogger(__name__)


MEMBER_MARK = "#"
"""`SOURCE#N` names member N of the ensemble SOURCE (e.g. `dfdc-lite0-ens#0`)."""


def split_member(source: Path) -> tuple[Path, int | None]:
    """(`source`, None), or for `SOURCE#N` naming no existing file, (SOURCE, N)."""
    text = str(source)
    head, mark, tail = text.rpartition(MEMBER_MARK)
    if not mark or source.exists() or not tail.isdigit():
        return source, None
    return Path(head), int(tail)


def members_of(source: Path) -> list[tuple[Detector, dict[str, Any]]]:
    """The networks `source` contributes to an ensemble, each with the record of where it came from: the one
    network of a single-network checkpoint, every member of an ensemble, or with `SOURCE#N` member N alone."""
    path, wanted = split_member(source)
    model, metadata = load_model(path)
    release = metadata.get("release") or {}
    release_name = f"{release['name']} {release['version']}" if release else None
    if not isinstance(model, Ensemble):
        if wanted is not None:
            raise ConfigError(f"{source}: {path} is one network, not an ensemble; #N picks a member of an ensemble")
        record = {
            "source": str(source),
            "release": release_name,
            "checkpoint": str(resolve_checkpoint(path)),
            "epoch": metadata.get("epoch"),
            "validation_metrics": metadata.get("metrics"),
            "config": metadata.get("config"),
        }
        return [(model, record)]
    entries = metadata["ensemble"]["members"]
    if wanted is not None and not 0 <= wanted < len(entries):
        raise ConfigError(
            f"{source}: {path} is an ensemble of {len(entries)} networks; pick member 0 to {len(entries) - 1}"
        )
    picked = range(len(entries)) if wanted is None else [wanted]
    found = []
    for index in picked:
        entry = {key: value for key, value in entries[index].items() if key not in ("model", "dropout")}
        entry["from_ensemble"] = {"source": str(path), "member": index, "release": release_name}
        found.append((model.members[index], entry))
    return found


def combine(models: Sequence[Path], out: Path, tta: str = "none") -> Path:
    """Write the ensemble of `models` (run folders, checkpoints or shipped names; an ensemble adds all its members,
    `SOURCE#N` its member N) to the run folder `out`; return its checkpoint. Every member is scored with `tta`,
    whatever the ensemble it came from used."""
    if not models:
        raise ConfigError("give at least one --model to combine")
    members, sources = [], []
    for source in models:
        for member, record in members_of(source):
            members.append(member)
            sources.append(record)
    ensemble = Ensemble(members, tta=tta)
    config: dict[str, Any] = {"ensemble_of": [str(source) for source in models], "tta": tta}
    metadata = build_metadata(ENSEMBLE, config, ensemble.preprocessing.to_dict(), epoch=0, metrics={})
    metadata["ensemble"] = ensemble.spec(sources)
    path = RunFolder(out).best
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, ensemble.state_dict(), metadata)
    logger.info("wrote an ensemble of %d network(s), tta %s, to %s", len(members), tta, path)
    return path
