"""The demo job: make a synthetic dataset, train both of the study's models briefly, compare them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfdetect.config import TrainConfig
from dfdetect.data.synthetic import make_synthetic_dataset
from dfdetect.engine.loops import Progress, no_progress
from dfdetect.engine.trainer import fit
from dfdetect.evaluation import score_split, write_evaluation
from dfdetect.runtime.torch_backend import TorchPredictor

logger = logging.getLogger(__name__)

DEMO_MODELS = ("own_cnn", "densenet121")


@dataclass
class DemoResult:
    """One model's demo outcome."""

    model: str
    metrics: dict[str, Any]
    epochs: int
    seconds: float
    run_dir: Path


def demo_config(data: Path, out: Path, model: str, epochs: int, image_size: int) -> TrainConfig:
    """The study's recipe scaled to a 600-image training set: smaller batches, a few epochs, 1 worker."""
    return TrainConfig(
        data=data,
        out=out,
        model=model,
        epochs=epochs,
        batch_size=32,
        image_size=image_size,
        device="cpu",
        workers=1,
        seed=0,
    )


def run_demo(
    out: Path,
    models: tuple[str, ...] = DEMO_MODELS,
    epochs: int = 6,
    image_size: int = 64,
    splits: dict[str, int] | None = None,
    progress: Progress = no_progress,
) -> list[DemoResult]:
    """Generate the synthetic data under out/data, train and evaluate each model under out/<model>."""
    data = out / "data"
    if not (data / "Test").is_dir():
        make_synthetic_dataset(data, splits=splits, image_size=image_size)
    results = []
    for model in models:
        logger.info("demo: training %s", model)
        result = fit(demo_config(data, out / model, model, epochs, image_size), progress=progress)
        assert result.model is not None
        predictor = TorchPredictor(result.model, device="cpu")
        evaluation = score_split(predictor, data, "Test", batch_size=64, workers=0)
        write_evaluation(evaluation, out / model / "test" / "metrics.json", title=model)
        results.append(DemoResult(model, evaluation.metrics, result.epochs_run, result.seconds, out / model))
    return results
