"""Figures from arrays: each function returns a matplotlib Figure and never shows it (Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import ConfusionMatrixDisplay, roc_auc_score, roc_curve

from dfdetect.conventions import CLASS_NAMES


def plot_learning_curve(
    epochs: Sequence[int], train: Sequence[float], validation: Sequence[float], metric: str, title: str = ""
) -> Figure:
    """Train and validation values of one metric per epoch (the study's Figures 1, 3, 7, 8)."""
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    axes.plot(epochs, train, marker="o", label=f"train {metric}")
    axes.plot(epochs, validation, marker="s", label=f"validation {metric}")
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.set_title(title or f"{metric} per epoch")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def plot_confusion_matrix(matrix: ArrayLike, title: str = "Confusion matrix") -> Figure:
    """Counts with rows = truth, columns = prediction, 0 = Fake, 1 = Real (the study's Figures 2, 4)."""
    figure = Figure(figsize=(4.5, 4), dpi=100)
    axes = figure.subplots()
    display = ConfusionMatrixDisplay(
        np.asarray(matrix), display_labels=[f"{i} = {n}" for i, n in enumerate(CLASS_NAMES)]
    )
    display.plot(ax=axes, cmap="Blues", colorbar=False, values_format="d")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def plot_reliability(
    mean_score: ArrayLike, share_real: ArrayLike, counts: ArrayLike, title: str = "Reliability of P(Real)"
) -> Figure:
    """Reliability diagram: per score bin, the share of real images against the mean P(Real); the diagonal is
    perfect calibration, and each point's size shows how many images the bin holds."""
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    sizes = 20 + 180 * np.asarray(counts, dtype=float) / max(1.0, float(np.max(counts)))
    axes.plot(mean_score, share_real, color="tab:blue", linewidth=1)
    axes.scatter(mean_score, share_real, s=sizes, color="tab:blue", label="model (size = images in the bin)")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean P(Real) in bin", ylabel="share of real images", title=title)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return figure


def plot_robustness(
    levels: Sequence[int],
    metrics: Mapping[str, Sequence[float | None]],
    clean: Mapping[str, float | None],
    title: str = "Robustness",
) -> Figure:
    """Each metric against the perturbation level, with the clean score as a dashed reference line."""
    figure = Figure(figsize=(5.5, 4))
    axes = figure.add_subplot()
    for index, (name, values) in enumerate(metrics.items()):
        color = f"C{index}"
        points = [(level, value) for level, value in zip(levels, values, strict=True) if value is not None]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", color=color, label=name)
        reference = clean.get(name)
        if reference is not None:
            axes.axhline(reference, color=color, linestyle="--", linewidth=1, label=f"{name}, clean")
    axes.set(xlabel="level (1 = mildest)", ylabel="value", ylim=(0, 1))
    axes.set_title(title, fontsize="medium")
    axes.set_xticks(list(levels))
    axes.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    return figure


def plot_roc_curves(curves: Mapping[str, tuple[ArrayLike, ArrayLike]], title: str = "ROC (positive = Real)") -> Figure:
    """One ROC curve per name from (labels, p_real), with AUC in the legend."""
    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.subplots()
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        axes.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.set_xlabel("false positive rate (fakes called real)")
    axes.set_ylabel("true positive rate (reals called real)")
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def plot_image_grid(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 4, title: str = "") -> Figure:
    """A grid of RGB images (H x W x 3 uint8) with a caption under each (the study's Figures 5, 6)."""
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(2.2 * columns, 2.4 * rows), dpi=100)
    axes_grid = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for axes in axes_grid:
        axes.axis("off")
    for axes, image, caption in zip(axes_grid, images, captions, strict=False):
        axes.imshow(image)
        axes.set_title(caption, fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_search_history(trial_numbers: Sequence[int], losses: Sequence[float]) -> Figure:
    """Each completed trial's best validation loss, with the best so far as a step line."""
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    axes.scatter(trial_numbers, losses, label="trial's best validation loss")
    best_so_far = np.minimum.accumulate(np.asarray(losses, dtype=float))
    axes.step(trial_numbers, best_so_far, where="post", color="tab:red", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel("validation loss")
    axes.set_title("hyperparameter search")
    axes.legend()
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """Save a figure as PNG, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
