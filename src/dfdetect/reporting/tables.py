"""Tables in the form of the study's Table 2, as Markdown (the CLI prints them as they are)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dfdetect.metrics import format_interval, format_value

LABEL_NOTE = (
    "Labels: 0 = Fake, 1 = Real. Sensitivity = recall on Real; specificity = recall on Fake; "
    "confusion matrix rows = truth, columns = prediction."
)

TABLE2_COLUMNS = ("accuracy", "sensitivity", "specificity", "auc", "average_precision", "eer")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with a header row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(format_value(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def table2(results: Mapping[str, Mapping[str, Any]], extra_columns: Sequence[str] = ()) -> str:
    """One row per model: the study's accuracy / sensitivity / specificity, then AUC, AP, EER and extras; a metric
    with a 95% interval in the results shows it (`0.874 [0.851, 0.896]`)."""
    header = ["model", *TABLE2_COLUMNS, *extra_columns]
    rows = [
        [name, *(with_interval(metrics, key) for key in TABLE2_COLUMNS), *(metrics.get(key) for key in extra_columns)]
        for name, metrics in results.items()
    ]
    return markdown_table(header, rows)


CALIBRATED_COLUMNS = ("ece_raw", "ece", "brier", "threshold", "accuracy", "sensitivity", "specificity")


def calibrated_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per model on calibrated probabilities: ECE before and after temperature scaling, Brier score, and
    the metrics at the threshold its policy chose on Validation."""
    header = ["model", "ECE (raw)", "ECE (calibrated)", "Brier", "threshold (policy)", "accuracy", "sensitivity",
              "specificity"]  # fmt: skip
    rows = [
        [
            name,
            metrics.get("ece_raw"),
            metrics.get("ece"),
            metrics.get("brier"),
            f"{metrics['threshold']:.4f} ({metrics.get('threshold_policy')})",
            *(with_interval(metrics, key) for key in ("accuracy", "sensitivity", "specificity")),
        ]
        for name, metrics in results.items()
    ]
    return markdown_table(header, rows)


CROSS_METRICS = ("auc", "accuracy", "eer", "average_precision")
"""The metrics `dfdetect evaluate` tabulates across models and datasets, one table each."""


def with_interval(metrics: Mapping[str, Any], key: str) -> str:
    """`0.874 [0.851, 0.896]` when the metrics carry a 95% interval for `key`, else the plain value."""
    intervals = metrics.get("intervals_95") or {}
    return format_interval(metrics.get(key), intervals.get(key))


def cross_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]], metric: str) -> str:
    """Rows = models, columns = datasets, cells = `metric` with its 95% interval."""
    datasets = list(dict.fromkeys(name for row in results.values() for name in row))
    rows = [
        [model, *(with_interval(row[name], metric) if name in row else "" for name in datasets)]
        for model, row in results.items()
    ]
    return markdown_table(["model", *datasets], rows)


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """One model's metrics as a two-column table (with 95% intervals where computed), confusion matrix spelled
    out, the score distribution on one line."""
    rows: list[list[Any]] = [
        [key, with_interval(metrics, key) if isinstance(value, float) else value]
        for key, value in metrics.items()
        if key not in ("confusion_matrix", "intervals_95", "p_real_quantiles", "policies")
    ]
    quantiles = metrics.get("p_real_quantiles")
    if quantiles:
        rows.append(["P(Real) min/q25/median/q75/max", " / ".join(f"{v:.3f}" for v in quantiles.values())])
    matrix = metrics["confusion_matrix"]
    rows.append(
        [
            "confusion_matrix",
            f"[[TN(fake→fake) {matrix[0][0]}, FP(fake→real) {matrix[0][1]}], "
            f"[FN(real→fake) {matrix[1][0]}, TP(real→real) {matrix[1][1]}]]",
        ]
    )
    return markdown_table(["metric", "value"], rows)
