"""Metrics as pure functions over a whole split. Labels: 0 = Fake, 1 = Real; scores are P(Real).

Sensitivity is recall on Real and specificity is recall on Fake, as in the study. Precision, F1 and
average precision treat Real (label 1) as the positive class. Confusion matrix rows are the truth and
columns the prediction, index 0 = Fake, 1 = Real.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics as skm

from dfdetect.conventions import DEFAULT_THRESHOLD

logger = logging.getLogger(__name__)

METRIC_KEYS = (
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "balanced_accuracy",
    "auc",
    "average_precision",
    "eer",
    "log_loss",
    "n_real",
    "n_fake",
    "confusion_matrix",
    "threshold",
)


def _validate(y_true: ArrayLike, p_real: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(p_real, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"y_true has {labels.size} values but p_real has {scores.size}")
    if labels.size == 0:
        raise ValueError("no samples to score")
    if not set(np.unique(labels)) <= {0, 1}:
        raise ValueError(f"labels must be 0 (Fake) or 1 (Real); found {sorted(set(np.unique(labels)))}")
    if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise ValueError("p_real must hold probabilities in [0, 1] (apply a sigmoid to logits first)")
    return labels, scores


def equal_error_rate(y_true: ArrayLike, p_real: ArrayLike) -> float:
    """The rate where false-positive and false-negative rates are equal, interpolated on the ROC curve."""
    labels, scores = _validate(y_true, p_real)
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    # Along the ROC, fnr - fpr falls from +1 at (0, 0) to -1 at (1, 1): find where it crosses zero.
    difference = (1 - tpr) - fpr
    crossing = int(np.flatnonzero(difference <= 0)[0])
    before, after = difference[crossing - 1], difference[crossing]
    weight = before / (before - after)
    return float(fpr[crossing - 1] + weight * (fpr[crossing] - fpr[crossing - 1]))


def classification_metrics(
    y_true: ArrayLike, p_real: ArrayLike, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, Any]:
    """Every reported metric for one split: predictions are Real when p_real >= threshold."""
    labels, scores = _validate(y_true, p_real)
    predicted = (scores >= threshold).astype(int)
    matrix = skm.confusion_matrix(labels, predicted, labels=[0, 1])
    n_fake, n_real = int((labels == 0).sum()), int((labels == 1).sum())
    both_classes = n_fake > 0 and n_real > 0
    if not both_classes:
        logger.warning("only one class present (%d real, %d fake): AUC, AP and EER are undefined", n_real, n_fake)

    def ratio(numerator: float, denominator: float) -> float | None:
        return float(numerator / denominator) if denominator else None

    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "sensitivity": ratio(matrix[1, 1], n_real),
        "specificity": ratio(matrix[0, 0], n_fake),
        "precision": float(skm.precision_score(labels, predicted, pos_label=1, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, pos_label=1, zero_division=0)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(labels, predicted)) if both_classes else None,
        "auc": float(skm.roc_auc_score(labels, scores)) if both_classes else None,
        "average_precision": float(skm.average_precision_score(labels, scores)) if both_classes else None,
        "eer": equal_error_rate(labels, scores) if both_classes else None,
        "log_loss": float(skm.log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "n_real": n_real,
        "n_fake": n_fake,
        "confusion_matrix": matrix.astype(int).tolist(),
        "threshold": float(threshold),
    }


INTERVAL_METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "auc", "average_precision", "eer")


def bootstrap_intervals(
    y_true: ArrayLike,
    p_real: ArrayLike,
    threshold: float = DEFAULT_THRESHOLD,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    keys: tuple[str, ...] = INTERVAL_METRICS,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap intervals of `keys`: each resample draws the Real and the Fake images apart, with
    replacement, in their own numbers (stratified), so every resample has both classes; seeded."""
    labels, scores = _validate(y_true, p_real)
    generator = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == label) for label in (0, 1)]
    draws: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(resamples):
        index = np.concatenate([generator.choice(group, size=group.size) for group in groups if group.size])
        values = classification_metrics(labels[index], scores[index], threshold)
        for key in keys:
            if values[key] is not None:
                draws[key].append(float(values[key]))
    tail = (1.0 - confidence) / 2 * 100
    return {
        key: (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))) if values else None
        for key, values in draws.items()
    }


def format_interval(value: Any, interval: tuple[float, float] | None) -> str:
    """`0.874 [0.851, 0.896]`, or the plain value when there is no interval."""
    if interval is None or value is None:
        return format_value(value)
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def binary_cross_entropy(y_true: ArrayLike, p_real: ArrayLike) -> float:
    """Mean binary cross-entropy (the training loss) over a whole split."""
    labels, scores = _validate(y_true, p_real)
    return float(skm.log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))


def format_value(value: Any) -> str:
    """A metric for a table: 4 decimals, or n/a when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
