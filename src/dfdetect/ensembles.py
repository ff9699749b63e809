"""`dfdetect ensemble`: trained detectors (or one, with test-time flips) combined into one checkpoint.

The result is a run folder like a training run's (`checkpoints/best.safetensors` + `.json`), so calibrate,
evaluate, predict, serve, export and tools/package_detector.py take it as they take a single network. Calibration
is not carried over from the members: the averaged logit is a new score, so calibrate the ensemble itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfdetect.engine.checkpoint import build_metadata, resolve_checkpoint, save_checkpoint
from dfdetect.errors import ConfigError
from dfdetect.models.ensemble import ENSEMBLE, Ensemble
from dfdetect.run_folder import RunFolder
from dfdetect.runtime.torch_backend import load_model

logger = logging.getLogger(__name__)


def combine(models: Sequence[Path], out: Path, tta: str = "none") -> Path:
    """Write the ensemble of `models` (run folders, checkpoints or shipped names) to the run folder `out`; return
    its checkpoint."""
    if not models:
        raise ConfigError("give at least one --model to combine")
    members, sources = [], []
    for source in models:
        model, metadata = load_model(source)
        if metadata["model"] == ENSEMBLE:
            raise ConfigError(f"{source}: already an ensemble; combine its members instead")
        members.append(model)
        release = metadata.get("release") or {}
        sources.append(
            {
                "source": str(source),
                "release": f"{release['name']} {release['version']}" if release else None,
                "checkpoint": str(resolve_checkpoint(source)),
                "epoch": metadata.get("epoch"),
                "validation_metrics": metadata.get("metrics"),
                "config": metadata.get("config"),
            }
        )
    ensemble = Ensemble(members, tta=tta)
    config: dict[str, Any] = {"ensemble_of": [str(source) for source in models], "tta": tta}
    metadata = build_metadata(ENSEMBLE, config, ensemble.preprocessing.to_dict(), epoch=0, metrics={})
    metadata["ensemble"] = ensemble.spec(sources)
    path = RunFolder(out).best
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, ensemble.state_dict(), metadata)
    logger.info("wrote an ensemble of %d model(s), tta %s, to %s", len(members), tta, path)
    return path
