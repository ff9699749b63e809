"""Evaluate a trained detector on a split: metrics JSON, confusion matrix, ROC curve, per-image scores."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dfdetect.calibration import Calibration, ThresholdChoice, calibrate, chosen_threshold
from dfdetect.conventions import CLASS_NAMES, DEFAULT_THRESHOLD
from dfdetect.data.dataset import FaceDataset, make_loader
from dfdetect.data.discovery import BadFile, Sample, load_split, split_folder, write_bad_files
from dfdetect.data.images import DEFAULT_MAX_PIXELS
from dfdetect.engine.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from dfdetect.engine.device import default_workers
from dfdetect.engine.loops import Progress, no_progress, predict_loader
from dfdetect.errors import ConfigError
from dfdetect.faces import FaceCropper
from dfdetect.metrics import bootstrap_intervals, classification_metrics, reliability_curve
from dfdetect.pretrained import folder as pretrained_folder
from dfdetect.quality import check_small_caution
from dfdetect.reporting.plots import plot_confusion_matrix, plot_reliability, plot_roc_curves, save_figure
from dfdetect.run_folder import RunFolder
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
    threshold: ThresholdChoice = None,
    progress: Progress = no_progress,
    bootstrap: int = 0,
    seed: int = 0,
    face_crop: FaceCropper | None = None,
) -> Evaluation:
    """Score every image of a split (or of a folder holding Real/Fake, or only one of them) and compute all
    metrics at once; with `bootstrap` resamples, 95% intervals of each metric too (`intervals_95`). With
    `face_crop`, images are cut to their largest face first, framed around it (`face_crop` in
    the metrics counts the images cut, those already framed like a face crop and those without a face)."""
    folder = split_folder(data, split)
    samples, bad = load_split(data, split, strict=strict, max_pixels=max_pixels, one_class=True)
    paths = [sample.path for sample in samples]
    crops = face_crop.boxes_of(paths, max_pixels) if face_crop else None
    dataset = FaceDataset(samples, predictor.transform, max_pixels, crops=crops)
    loader = make_loader(dataset, batch_size, default_workers(workers), pin_memory=predictor.device.type == "cuda")
    labels, scores = predict_loader(predictor.model, loader, predictor.device, progress, f"evaluate {folder.name}")
    scores = predictor.calibrated_scores(scores)
    if threshold is None:
        threshold, policy = predictor.threshold, predictor.threshold_policy
    else:
        threshold, policy = chosen_threshold(predictor.metadata.get("calibration"), threshold)
    quantiles = np.quantile(scores, [0.0, 0.25, 0.5, 0.75, 1.0])
    metrics = {
        **classification_metrics(labels, scores, threshold),
        "threshold_policy": policy,
        "calibrated": predictor.is_calibrated,
        "p_real_quantiles": dict(zip(("min", "q25", "median", "q75", "max"), quantiles.tolist(), strict=True)),
        "intervals_95": bootstrap_intervals(labels, scores, threshold, resamples=bootstrap, seed=seed)
        if bootstrap
        else None,
        "policies": policy_metrics(labels, scores, predictor.metadata.get("calibration")),
        "face_crop": face_crop.summary(paths) if face_crop else None,
    }
    if face_crop and metrics["face_crop"]["no_face"]:
        missing = metrics["face_crop"]["no_face"]
        logger.warning("%s: no face found in %d of %d images; they were scored whole", folder, missing, len(paths))
    return Evaluation(metrics, labels, scores, samples, bad, folder)


def policy_metrics(
    labels: np.ndarray, scores: np.ndarray, calibration: dict[str, Any] | None
) -> dict[str, dict[str, float | None]] | None:
    """Accuracy, sensitivity and specificity at each threshold policy `dfdetect calibrate` stored (None if none)."""
    if not calibration:
        return None
    table = {}
    for name, threshold in calibration["thresholds"].items():
        metrics = classification_metrics(labels, scores, threshold)
        table[name] = {"threshold": threshold, **{k: metrics[k] for k in ("accuracy", "sensitivity", "specificity")}}
    return table


def write_evaluation(evaluation: Evaluation, out: Path, per_image: Path | None = None, title: str = "") -> None:
    """metrics.json at `out`, and confusion_matrix.png, roc_curve.png (both classes present), reliability.png and
    bad_files.txt beside it."""
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
    calibrated = "calibrated" if evaluation.metrics.get("calibrated") else "uncalibrated"
    save_figure(
        plot_reliability(
            *reliability_curve(evaluation.labels, evaluation.scores),
            f"{prefix}reliability ({calibrated}), ECE {evaluation.metrics['ece']:.3f}",
        ),
        out.parent / "reliability.png",
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


def cross_evaluate(
    models: Mapping[str, Path],
    datasets: Mapping[str, Path],
    out: Path,
    split: str = "Test",
    device: str = "auto",
    threshold: ThresholdChoice = None,
    batch_size: int = 64,
    workers: int = -1,
    bootstrap: int = 1000,
    seed: int = 0,
    progress: Progress = no_progress,
    face_crop: FaceCropper | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every model on every dataset: `out/<model>/<dataset>/` holds each cell's metrics, figures and per-image
    scores (predictions.csv, as --per-image writes it), `out/results.json` all the metrics, `out/tables.md` one
    table per metric (rows = models, columns = datasets). With `face_crop`, every image is cut to its largest face
    first (found once, whatever the number of models)."""
    from dfdetect.reporting.tables import CROSS_METRICS, LABEL_NOTE, cross_table

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for model_name, model_path in models.items():
        predictor = TorchPredictor.from_checkpoint(model_path, device=device, threshold=threshold)
        results[model_name] = {}
        for data_name, data_path in datasets.items():
            evaluation = score_split(
                predictor,
                data_path,
                split,
                batch_size=batch_size,
                workers=workers,
                threshold=threshold,
                progress=progress,
                bootstrap=bootstrap,
                seed=seed,
                face_crop=face_crop,
            )
            cell = out / model_name / data_name
            write_evaluation(
                evaluation, cell / "metrics.json", cell / "predictions.csv", title=f"{model_name}, {data_name}"
            )
            results[model_name][data_name] = evaluation.metrics
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    sections = [f"## {metric}\n\n{cross_table(results, metric)}\n" for metric in CROSS_METRICS]
    note = f"Split: {split}. Cells: value [95% bootstrap interval, {bootstrap} stratified resamples]. {LABEL_NOTE}\n"
    if face_crop:
        note += f"\n{face_crop_note(face_crop, results)}\n"
    (out / "tables.md").write_text("# Models x datasets\n\n" + note + "\n" + "\n".join(sections), encoding="utf-8")
    return results


def face_crop_note(face_crop: FaceCropper, results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """One sentence for a report: how the images were framed and, per dataset, how many were cut to a face."""
    first_model = next(iter(results.values()), {})  # every model saw the same boxes
    counts = []
    for data, metrics in first_model.items():
        crop = metrics["face_crop"]
        total = crop["cropped"] + crop["already_framed"] + crop["no_face"]
        counts.append(f"{data} {crop['cropped']}/{total} ({crop['no_face']} without a face)")
    rule = "loosely framed ones" if face_crop.mode == "auto" else "all"
    return (
        f"Framing `{face_crop.mode}` (`--crop-face`): {rule} cut to their largest face ({face_crop.detector}, "
        f"margin {face_crop.margin:+.2f} of the box on each side) before scoring, the rest "
        f"scored as they are; cut: {', '.join(counts)}."
    )


def calibrate_checkpoint(
    checkpoint: Path,
    data: Path,
    split: str = "Validation",
    policy: str = "eer",
    device: str = "auto",
    workers: int = -1,
    progress: Progress = no_progress,
    small_caution: int | None = None,
) -> tuple[Calibration, Path]:
    """Fit temperature scaling and the threshold policies on `split` (never Test), store them in the checkpoint's
    metadata (safetensors header and JSON; an export carries them into ONNX), and return them with the file.
    `small_caution`: the detector's own small-input limit in pixels, stored with them (None keeps the one an earlier
    calibration stored, if any)."""
    check_small_caution(small_caution)
    if split.lower() == "test":
        raise ConfigError(
            "calibrate on a held-out split such as Validation, never on Test: Test is for the final number"
        )
    path = resolve_checkpoint(checkpoint)
    if RunFolder.of_checkpoint(path).root == pretrained_folder():
        raise ConfigError(f"{checkpoint}: a shipped detector is calibrated before it ships; calibrate a run folder")
    predictor = TorchPredictor.from_checkpoint(path, device=device)
    predictor.temperature = 1.0  # fit on the model's own scores, whatever an earlier calibration stored
    evaluation = score_split(predictor, data, split, workers=workers, threshold=DEFAULT_THRESHOLD, progress=progress)
    state, metadata, train_state = load_checkpoint(path)
    if small_caution is None:
        small_caution = (metadata.get("calibration") or {}).get("small_caution")
    calibration = calibrate(
        evaluation.labels, evaluation.scores, policy, split=f"{data.name}/{split}", small_caution=small_caution
    )
    save_checkpoint(path, state, {**metadata, "calibration": calibration.to_dict()}, train_state)
    return calibration, path
