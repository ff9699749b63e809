"""Turn a finished run into a shipped detector: fp16 weights, metrics with intervals, example scores, metadata.

Used by tools/package_detector.py. The metrics describe the fp16 weights that ship (loaded back into the fp32
model, as predict and serve load them), not the run's fp32 checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from dfdetect.engine.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from dfdetect.evaluation import score_split
from dfdetect.metrics import bootstrap_intervals
from dfdetect.runtime.torch_backend import TorchPredictor, load_model

logger = logging.getLogger(__name__)


def half_precision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors to fp16 (half the file); integer buffers (BatchNorm's counters) as they are."""
    return {key: value.half() if value.is_floating_point() else value for key, value in state.items()}


def split_report(predictor: TorchPredictor, data: Path, split: str, resamples: int) -> dict[str, Any]:
    """Metrics of one split with 95% stratified bootstrap intervals."""
    evaluation = score_split(predictor, data, split, workers=0)
    intervals = bootstrap_intervals(evaluation.labels, evaluation.scores, resamples=resamples)
    return {"data": f"{Path(data).name}/{split}", "metrics": evaluation.metrics, "intervals_95": intervals}


def package_detector(
    run: Path,
    out_folder: Path,
    name: str,
    version: str,
    release: dict[str, Any],
    data: Path | None = None,
    splits: tuple[str, ...] = ("Validation", "Test"),
    examples: list[Path] | None = None,
    resamples: int = 1000,
) -> Path:
    """Write `out_folder/<name>-<version>.safetensors` (+ .json) from the best checkpoint of `run`.

    `release` holds the card's facts (summary, training data and terms, command); splits of `data` are scored
    with the shipped weights, and so are the `examples`, whose p_fake the package's test checks.
    """
    state, metadata, _ = load_checkpoint(resolve_checkpoint(run))
    shipped_state = half_precision(state)
    out = out_folder / f"{name}-{version}.safetensors"
    model, _ = load_model(run)
    model.load_state_dict(shipped_state)  # fp16 values into the fp32 model: what loading the shipped file gives
    predictor = TorchPredictor(model, metadata, device="cpu")
    info: dict[str, Any] = {
        **release,
        "name": name,
        "version": version,
        "architecture": metadata["model"],
        "weights": "fp16",
    }
    if data is not None:
        info["evaluation"] = {split: split_report(predictor, data, split, resamples) for split in splits}
    if examples:
        results = predictor.predict_paths(examples)
        failed = [result.error for result in results if result.error]
        if failed:
            raise ValueError(f"example images failed: {failed}")
        info["examples"] = {Path(result.path).name: result.p_fake for result in results}
    save_checkpoint(out, shipped_state, {**metadata, "release": info})
    logger.info("packaged %s %s from %s into %s", name, version, run, out)
    return out
