"""The study's comparison as one job: train several models with one recipe, test each, write one report.

Each model's run lives in out/<model>; a model whose `test/summary.json` exists is finished and skipped
when the experiment is rerun, and one with a `last` checkpoint is resumed.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image

from dfdetect.config import TrainConfig, build_config, read_yaml
from dfdetect.conventions import CLASS_NAMES
from dfdetect.conventions import VERSION as __version__
from dfdetect.data.autoencoder import Reconstructor, reconstructors
from dfdetect.data.discovery import list_samples, split_folder
from dfdetect.data.images import load_rgb
from dfdetect.data.pseudo_fakes import TRAINED, make_pseudo_fake, parse_makers
from dfdetect.engine.loops import Progress, no_progress
from dfdetect.engine.trainer import fit
from dfdetect.evaluation import calibrate_checkpoint, score_split, write_evaluation
from dfdetect.faces import FaceCropper, face_cropper
from dfdetect.models import weights_present
from dfdetect.reporting.plots import plot_image_grid, plot_roc_curves, save_figure
from dfdetect.reporting.report import Report
from dfdetect.reporting.tables import LABEL_NOTE, calibrated_table, cross_table, table2
from dfdetect.run_folder import RunFolder
from dfdetect.runtime.torch_backend import TorchPredictor
from dfdetect.tracking import Tracker

logger = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000
CALIBRATION_POLICY = "eer"


@dataclass
class ModelOutcome:
    """One model's result in an experiment."""

    model: str
    metrics: dict[str, Any]
    epochs: int
    minutes: float
    pretrained: bool
    run_dir: Path
    paths: list[str]
    labels: np.ndarray
    scores: np.ndarray
    calibrated_metrics: dict[str, Any] | None = None
    """Test metrics after temperature scaling and the EER threshold, both fitted on Validation."""
    held_out: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Metrics on each held-out evaluation set (--eval NAME=DIR), by name."""
    machine: str | None = None
    """Where the arm was trained and tested (None: a run from before the summary recorded it)."""


def split_entry(entry: str) -> tuple[str, str]:
    """`LABEL=MODEL` (one arm of the comparison, e.g. `sbi=efficientnet_lite0`) or `MODEL` (labelled by itself)."""
    label, _, model = entry.partition("=")
    return (label.strip(), model.strip()) if model else (entry.strip(), entry.strip())


def experiment_config(
    entry: str,
    data: Path,
    out: Path,
    overrides: dict[str, Any],
    config_file: Path | None,
    recipe: dict[str, Any] | None = None,
) -> TrainConfig:
    """The study's recipe (or a shipped `recipe`) < the arm's config file < command-line overrides; pretrained
    where weights exist. `entry` is a model name, or LABEL=MODEL for several arms with one model."""
    label, model = split_entry(entry)
    base = {"model": model, "data": data, "out": out / label, "pretrained": weights_present(model)}
    from_file = read_yaml(config_file) if config_file else {}
    return build_config(base, recipe or {}, from_file, {**overrides, "model": model, "out": out / label, "data": data})


def read_per_image(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([CLASS_NAMES.index(row["label"]) for row in rows])
    return [row["path"] for row in rows], labels, np.array([float(row["p_real"]) for row in rows])


def run_model(
    config: TrainConfig,
    progress: Progress = no_progress,
    tracker: Tracker | None = None,
    held_out: Mapping[str, Path] | None = None,
    face_crop: FaceCropper | None = None,
) -> ModelOutcome:
    """Train (or resume, or skip if finished) one model, evaluate it on Test and on each `held_out` set (framed
    by `face_crop`, if given; the dataset's own Test split is scored as it is)."""
    tracker = tracker or Tracker()
    assert config.out is not None and config.data is not None
    run = RunFolder(config.out)
    summary_path = run.experiment_test / "summary.json"
    if summary_path.is_file():
        logger.info("%s: finished earlier, skipping (delete %s to rerun)", config.model, summary_path)
    else:
        resume = run.last.is_file()
        result = fit(config, resume=resume, progress=progress, tracker=tracker)
        assert result.model is not None
        predictor = TorchPredictor(result.model, device=config.device)
        test = functools.partial(
            score_split,
            data=config.data,
            split="Test",
            batch_size=config.batch_size,
            workers=config.workers,
            max_pixels=config.max_image_pixels,
            progress=progress,
            bootstrap=BOOTSTRAP_RESAMPLES,
            seed=config.seed,
        )
        evaluation = test(predictor)
        calibration, _ = calibrate_checkpoint(
            run.root, config.data, "Validation", CALIBRATION_POLICY, config.device, config.workers, progress
        )
        calibrated = test(TorchPredictor.from_checkpoint(run.root, device=config.device))
        write_evaluation(
            evaluation, run.experiment_test / "metrics.json", run.experiment_test / "per_image.csv", title=config.model
        )
        summary = {
            "metrics": evaluation.metrics,
            "epochs": result.epochs_run,
            "best_epoch": result.best_epoch,
            "minutes": result.seconds / 60,
            "pretrained": config.pretrained,
            "calibrated_metrics": {**calibrated.metrics, "ece_raw": evaluation.metrics["ece"]},
            "calibration": calibration.to_dict(),
            "machine": machine_description(),
        }
        summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        tracker.log_metrics({f"test_{key}": value for key, value in evaluation.metrics.items()})
        tracker.log_artifacts([run.experiment_test / name for name in ("confusion_matrix.png", "roc_curve.png")])
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    missing = {name: folder for name, folder in (held_out or {}).items() if name not in summary.get("held_out", {})}
    if missing:  # also for a run finished before these sets were asked for
        predictor = TorchPredictor.from_checkpoint(run.root, device=config.device, threshold=0.5)
        for name, folder in missing.items():
            evaluation = score_split(
                predictor,
                folder,
                "Test",
                workers=config.workers,
                bootstrap=BOOTSTRAP_RESAMPLES,
                seed=config.seed,
                face_crop=face_crop,
            )
            write_evaluation(evaluation, run.evaluation(name) / "metrics.json", title=f"{run.root.name}, {name}")
            summary.setdefault("held_out", {})[name] = evaluation.metrics
            tracker.log_metrics({f"{name}_{key}": value for key, value in evaluation.metrics.items()})
        summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    paths, labels, scores = read_per_image(run.experiment_test / "per_image.csv")
    return ModelOutcome(
        run.root.name,
        summary["metrics"],
        summary["epochs"],
        summary["minutes"],
        summary["pretrained"],
        run.root,
        paths,
        labels,
        scores,
        summary.get("calibrated_metrics"),
        {name: summary["held_out"][name] for name in (held_out or {})},
        summary.get("machine"),
    )


def machine_description() -> str:
    """CPU, GPU and package versions, for the report."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{platform.platform()}; {torch.get_num_threads()} torch CPU threads; GPU: {gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, dfdetect {__version__}"
    )


def machines_paragraph(arms: list[tuple[str, str | None]], here: str) -> str:
    """Where each arm was trained and tested, and where the report was built (arms may come from other machines:
    a finished arm is reused when the experiment is rerun elsewhere)."""
    if all(machine == here for _, machine in arms):
        return f"Machine: {here}"
    by_machine: dict[str, list[str]] = {}
    for name, machine in arms:
        by_machine.setdefault(machine or "not recorded (a run from before dfdetect kept it)", []).append(name)
    trained = "; ".join(f"{', '.join(names)}: {machine}" for machine, names in by_machine.items())
    return f"Machine, per arm (training and Test): {trained}. Report built on: {here}"


def thumbnail(path: str | Path, size: int = 128) -> np.ndarray:
    return np.asarray(load_rgb(Path(path)).resize((size, size), Image.Resampling.BILINEAR))


def most_confidently_wrong(outcome: ModelOutcome, count: int = 8) -> list[int]:
    """Indices of misclassified test images, the most confident mistakes first."""
    confidence_in_wrong = np.where(outcome.labels == 1, 1 - outcome.scores, outcome.scores)
    wrong = np.flatnonzero(confidence_in_wrong > 0.5)
    return wrong[np.argsort(-confidence_in_wrong[wrong])][:count].tolist()


def run_reconstructors(outcomes: list[ModelOutcome], configs: dict[str, TrainConfig]) -> dict[str, Reconstructor]:
    """The auto-encoder makers of the arms that trained with them, on the auto-encoder each trained (or was given),
    for the figure."""
    found: dict[str, Reconstructor] = {}
    for outcome in outcomes:
        config = configs[outcome.model]
        names = [name for name in parse_makers(config.pseudo_fakes) if name in TRAINED and name not in found]
        found.update(reconstructors(config.autoencoder or RunFolder(outcome.run_dir).autoencoder, names))
    return found


def build_report(
    outcomes: list[ModelOutcome], data: Path, out: Path, command: str, configs: dict[str, TrainConfig]
) -> tuple[Path, Path]:
    """report.md and report.html in `out`, reproducing the study's results section."""
    figures = out / "figures"
    report = Report("dfdetect experiment report")
    report.paragraph(f"Data: `{data}`. Command: `{command}`")
    report.paragraph(machines_paragraph([(o.run_dir.name, o.machine) for o in outcomes], machine_description()))
    report.heading("Table 2: test-split results")
    rows = {
        o.model + (" (ImageNet)" if o.pretrained else " (scratch)"): {
            **o.metrics,
            "epochs": o.epochs,
            "minutes": o.minutes,
        }
        for o in outcomes
    }
    report.table(table2(rows, extra_columns=("epochs", "minutes")))
    report.paragraph(
        f"Threshold 0.5 on the models' own probabilities, as in the study. Brackets: 95% bootstrap intervals "
        f"({BOOTSTRAP_RESAMPLES} stratified resamples of Test). {LABEL_NOTE}"
    )
    calibrated = {o.model: o.calibrated_metrics for o in outcomes if o.calibrated_metrics}
    if calibrated:
        report.heading("Calibrated probabilities and a chosen threshold")
        report.table(calibrated_table(calibrated))
        report.paragraph(
            "Temperature scaling and the threshold policy (`eer`: equal error rates on both classes) were fitted on "
            "Validation and applied to Test; ECE is over 15 equal-width bins of P(Real)."
        )
    report.figure(
        save_figure(plot_roc_curves({o.model: (o.labels, o.scores) for o in outcomes}), figures / "roc_all.png"),
        "ROC curves of all models on the Test split",
    )

    held_out = {o.model: {f"{data.name} Test": o.metrics, **o.held_out} for o in outcomes if o.held_out}
    if held_out:
        report.heading("Cross-source generalisation")
        report.table(cross_table(held_out, "auc"))
        report.paragraph(
            "AUC with its 95% bootstrap interval on the dataset's own Test split and on each held-out set (`--eval`; "
            "evaluation only, never trained on). Rows are the experiment's arms (training recipes). "
            + held_out_framing(outcomes)
        )

    report.heading("Example training images (Figures 5, 6)")
    train = list_samples(split_folder(data, "Train"))
    rng = np.random.default_rng(0)
    examples = []
    for label in (1, 0):
        pool = [sample for sample in train if sample.label == label]
        examples += [pool[index] for index in rng.permutation(len(pool))[:4]]
    grid = plot_image_grid([thumbnail(s.path) for s in examples], [CLASS_NAMES[s.label] for s in examples])
    report.figure(save_figure(grid, figures / "examples.png"), "Real (top) and Fake (bottom) training images")
    makers = list(dict.fromkeys(name for c in configs.values() for name in parse_makers(c.pseudo_fakes)))
    if makers:
        reals = [thumbnail(sample.path) for sample in examples[:4]]
        trained = run_reconstructors(outcomes, configs)
        images = reals + [make_pseudo_fake(real, [maker], np.random.default_rng(i), trained=trained)
                          for maker in makers for i, real in enumerate(reals)]  # fmt: skip
        captions = ["real"] * 4 + [f"pseudo-fake: {maker}" for maker in makers for _ in reals]
        report.figure(
            save_figure(plot_image_grid(images, captions), figures / "pseudo_fakes.png"),
            "Real training faces (top) and the pseudo-fakes made from them (below)",
        )

    for outcome in outcomes:
        report.heading(f"{outcome.model}")
        for name, caption in (
            ("accuracy.png", "accuracy per epoch"),
            ("loss.png", "loss per epoch"),
            ("test/confusion_matrix.png", "confusion matrix on Test (0 = Fake, 1 = Real)"),
        ):
            report.figure(outcome.run_dir / name, f"{outcome.model}: {caption}")
        wrong = most_confidently_wrong(outcome)
        if wrong:
            captions = [f"truth {CLASS_NAMES[outcome.labels[i]]}, P(Real) {outcome.scores[i]:.2f}" for i in wrong]
            grid = plot_image_grid([thumbnail(outcome.paths[i]) for i in wrong], captions)
            report.figure(
                save_figure(grid, figures / f"wrong_{outcome.model.replace('/', '_')}.png"),
                f"{outcome.model}: the test images it got most confidently wrong",
            )
        report.paragraph("Configuration:")
        report.code(yaml.safe_dump(configs[outcome.model].to_dict(), sort_keys=False))
    return report.write(out)


def held_out_framing(outcomes: list[ModelOutcome]) -> str:
    """How each arm's held-out images were framed (`--crop-face`), as stored with its metrics."""
    modes = sorted(
        {
            (metrics.get("face_crop") or {}).get("mode", "never")
            for outcome in outcomes
            for metrics in outcome.held_out.values()
        }
    )
    return f"Held-out images framed `{' / '.join(modes)}` (`--crop-face`; see `dfdetect evaluate --help`)."


def run_experiment(
    data: Path,
    models: list[str],
    out: Path,
    overrides: dict[str, Any] | None = None,
    config_files: dict[str, Path] | None = None,
    command: str = "",
    progress: Progress = no_progress,
    recipe: dict[str, Any] | None = None,
    tracker: Tracker | None = None,
    held_out: Mapping[str, Path] | None = None,
    crop_face: str = "auto",
) -> tuple[list[ModelOutcome], Path]:
    """Train, test and report every arm (a model, or LABEL=MODEL); returns the outcomes and the report's path.

    `held_out` sets (evaluation only) get a cross-source table, their images framed as `evaluate --crop-face
    crop_face` frames them (faces found once for all arms, and kept in OUT/faces.json for a rerun). With a
    `tracker`, the experiment is one run and each arm a child run of it."""
    face_crop = face_cropper(crop_face, faces_file=out / "faces.json")  # a rerun to continue finds none again
    tracker = tracker or Tracker()
    files = config_files or {}
    configs = {}
    for entry in models:
        label, _ = split_entry(entry)
        configs[label] = experiment_config(entry, data, out, overrides or {}, files.get(label), recipe)
    outcomes = []
    with tracker.run(out.name, {"models": ",".join(models), "data": str(data), "command": command}):
        for label, config in configs.items():
            logger.info("experiment: %s (%s, pretrained: %s)", label, config.model, config.pretrained)
            with tracker.run(label, config.to_dict()):
                outcomes.append(run_model(config, progress, tracker, held_out, face_crop))
            trained = RunFolder(out / label).config
            if trained.is_file():  # an arm finished earlier reports the configuration it was trained with
                configs[label] = build_config(read_yaml(trained))
        markdown, html = build_report(outcomes, data, out, command, configs)
        tracker.log_artifacts([markdown, html])
    return outcomes, markdown
