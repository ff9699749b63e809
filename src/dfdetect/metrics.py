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
from scipy.stats import rankdata
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
    "ece",
    "brier",
    "n_real",
    "n_fake",
    "confusion_matrix",
    "threshold",
)
EVALUATION_KEYS = (
    *METRIC_KEYS,
    "threshold_policy",
    "calibrated",
    "p_real_quantiles",
    "intervals_95",
    "policies",
    "face_crop",
)
"""What `dfdetect evaluate` writes: every metric, how the threshold was chosen and the scores calibrated, and how
the images were framed (`--crop-face`; None: scored as they are)."""


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
        "ece": expected_calibration_error(labels, scores),
        "brier": brier_score(labels, scores),
        "n_real": n_real,
        "n_fake": n_fake,
        "confusion_matrix": matrix.astype(int).tolist(),
        "threshold": float(threshold),
    }


INTERVAL_METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "auc", "average_precision", "eer")


def interval_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | None]:
    """INTERVAL_METRICS of one (validated) sample, computed lean: the bootstrap calls this a thousand times.
    Equal to classification_metrics' values (tested)."""
    predicted_real = scores >= threshold
    real = labels == 1
    n_real, n_fake = int(real.sum()), int((~real).sum())
    sensitivity = float((predicted_real & real).sum() / n_real) if n_real else None
    specificity = float((~predicted_real & ~real).sum() / n_fake) if n_fake else None
    both = sensitivity is not None and specificity is not None
    auc = average_precision = eer = None
    if both:
        ranks = rankdata(scores)  # Mann-Whitney: AUC from the ranks of the real images' scores
        auc = float((ranks[real].sum() - n_real * (n_real + 1) / 2) / (n_real * n_fake))
        average_precision = float(skm.average_precision_score(labels, scores))
        eer = equal_error_rate(labels, scores)
    return {
        "accuracy": float((predicted_real == real).mean()),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": (sensitivity + specificity) / 2 if both else None,  # type: ignore[operator]
        "auc": auc,
        "average_precision": average_precision,
        "eer": eer,
    }


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
        values = interval_metrics(labels[index], scores[index], threshold)
        for key in keys:
            value = values[key]
            if value is not None:
                draws[key].append(value)
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


def expected_calibration_error(y_true: ArrayLike, p_real: ArrayLike, bins: int = 15) -> float:
    """Expected calibration error of P(Real): over `bins` equal-width bins of the score, the gap between the mean
    score and the share of real images, weighted by the bin's share of images."""
    labels, scores = _validate(y_true, p_real)
    index = np.minimum((scores * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            error += members.mean() * abs(scores[members].mean() - labels[members].mean())
    return float(error)


def reliability_curve(
    y_true: ArrayLike, p_real: ArrayLike, bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin: (mean P(Real), share of real images, count), for a reliability diagram."""
    labels, scores = _validate(y_true, p_real)
    index = np.minimum((scores * bins).astype(int), bins - 1)
    used = [b for b in range(bins) if (index == b).any()]
    mean_score = np.array([scores[index == b].mean() for b in used])
    share_real = np.array([labels[index == b].mean() for b in used])
    counts = np.array([(index == b).sum() for b in used])
    return mean_score, share_real, counts


def brier_score(y_true: ArrayLike, p_real: ArrayLike) -> float:
    """Mean squared difference between P(Real) and the label."""
    labels, scores = _validate(y_true, p_real)
    return float(np.mean((scores - labels) ** 2))


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
