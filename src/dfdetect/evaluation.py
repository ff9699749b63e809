"""Evaluate a trained detector on a split: metrics JSON, confusion matrix, ROC curve, per-image scores."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dfdetect.conventions import CLASS_NAMES, DEFAULT_THRESHOLD
from dfdetect.data.dataset import FaceDataset, make_loader
from dfdetect.data.discovery import BadFile, Sample, load_split, split_folder, write_bad_files
from dfdetect.data.images import DEFAULT_MAX_PIXELS
from dfdetect.engine.device import default_workers
from dfdetect.engine.loops import Progress, no_progress, predict_loader
from dfdetect.metrics import classification_metrics
from dfdetect.reporting.plots import plot_confusion_matrix, plot_roc_curves, save_figure
from dfdetect.runtime.torch_backend import TorchPredictor

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Metrics of one model on one split, with the raw scores they were computed from."""

    metrics: dict[str, Any]
    labels: np.ndarray
    scores: np.ndarray
    samples: list[Sample]
    bad_files: list[BadFile]
    folder: Path


def score_split(
    predictor: TorchPredictor,
    data: Path,
    split: str = "Test",
    batch_size: int = 64,
    workers: int = -1,
    strict: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Progress = no_progress,
) -> Evaluation:
    """Score every image of a split (or of a folder holding Real/Fake) and compute all metrics at once."""
    folder = split_folder(data, split)
    samples, bad = load_split(data, split, strict=strict, max_pixels=max_pixels)
    dataset = FaceDataset(samples, predictor.transform, max_pixels)
    loader = make_loader(dataset, batch_size, default_workers(workers), pin_memory=predictor.device.type == "cuda")
    labels, scores = predict_loader(predictor.model, loader, predictor.device, progress, f"evaluate {folder.name}")
    metrics = classification_metrics(labels, scores, threshold)
    return Evaluation(metrics, labels, scores, samples, bad, folder)


def write_evaluation(evaluation: Evaluation, out: Path, per_image: Path | None = None, title: str = "") -> None:
    """metrics.json at `out`, and confusion_matrix.png, roc_curve.png and bad_files.txt beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(evaluation.metrics, indent=2), encoding="utf-8")
    prefix = f"{title}: " if title else ""
    save_figure(
        plot_confusion_matrix(evaluation.metrics["confusion_matrix"], f"{prefix}confusion matrix (0 = Fake, 1 = Real)"),
        out.parent / "confusion_matrix.png",
    )
    if evaluation.metrics["auc"] is not None:
        save_figure(
            plot_roc_curves({title or "model": (evaluation.labels, evaluation.scores)}),
            out.parent / "roc_curve.png",
        )
    write_bad_files(evaluation.bad_files, out.parent / "bad_files.txt")
    if per_image is not None:
        write_per_image(evaluation, per_image)


def write_per_image(evaluation: Evaluation, path: Path) -> None:
    """CSV with path, label, p_real, prediction (labels and predictions as class names)."""
    threshold = evaluation.metrics["threshold"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "p_real", "prediction"])
        for sample, p_real in zip(evaluation.samples, evaluation.scores, strict=True):
            writer.writerow(
                [
                    sample.path,
                    CLASS_NAMES[sample.label],
                    f"{p_real:.6f}",
                    CLASS_NAMES[int(p_real >= threshold)],
                ]
            )
