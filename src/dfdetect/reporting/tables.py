"""Tables in the form of the study's Table 2, as Markdown (the CLI prints them as they are)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dfdetect.metrics import format_value

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
    """One row per model: the study's accuracy / sensitivity / specificity, then AUC, AP, EER and extras."""
    header = ["model", *TABLE2_COLUMNS, *extra_columns]
    rows = [
        [name, *(metrics.get(key) for key in (*TABLE2_COLUMNS, *extra_columns))] for name, metrics in results.items()
    ]
    return markdown_table(header, rows)


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """One model's metrics as a two-column table, confusion matrix spelled out."""
    rows = [[key, value] for key, value in metrics.items() if key != "confusion_matrix"]
    matrix = metrics["confusion_matrix"]
    rows.append(
        [
            "confusion_matrix",
            f"[[TN(fake→fake) {matrix[0][0]}, FP(fake→real) {matrix[0][1]}], "
            f"[FN(real→fake) {matrix[1][0]}, TP(real→real) {matrix[1][1]}]]",
        ]
    )
    return markdown_table(["metric", "value"], rows)
