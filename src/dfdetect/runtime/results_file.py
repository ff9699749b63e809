"""`predict --out FILE` in CSV or JSON lines, written as the rows are scored and resumable.

Scoring a large folder on a CPU takes hours; a crash, a reboot or Ctrl-C should not lose what was scored. A
`ResultsFile` appends each batch of rows and flushes it, so at most the batch being scored is lost, and
`--resume` reads back which paths the file already holds, so a second run scores only the others and appends
them. A line cut short by a process killed while writing it is dropped (the file is cut back to its last whole
line) and that path is scored again.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any, TextIO

from dfdetect.errors import DfdetectError

STREAMED_FORMATS = ("csv", "jsonl")
"""The formats whose rows stand alone, so they can be written one batch at a time and appended to."""

EXTRA_COLUMNS = ("frames_read", "faces_found", "aggregate", "face", "box")
"""Columns after the `Prediction` fields: videos' (frames_read, faces_found, aggregate), photos cut to their faces'
(faces_found, face, box)."""


def fieldnames(rows: list[dict[str, Any]], extra: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """CSV columns: the `Prediction` fields, then each of EXTRA_COLUMNS that a row has or `extra` names."""
    from dfdetect.runtime.base import Prediction

    present = set(extra) | {key for row in rows for key in row}
    return [field.name for field in dataclasses.fields(Prediction)] + [key for key in EXTRA_COLUMNS if key in present]


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as CSV writes it: `caution_codes` space-separated."""
    return {**row, "caution_codes": " ".join(row.get("caution_codes") or [])}


def scored_paths(path: Path, fmt: str, columns: list[str]) -> dict[str, str | None]:
    """The paths an earlier run wrote to the results file `path`, each with the model that scored it (none if the
    file is missing or empty). A last line cut short is then removed from the file. DfdetectError, naming the file
    and leaving it as it is, if it is not such a results file or its CSV columns are not `columns` (an earlier run
    over other kinds of input)."""
    if not path.is_file():
        return {}
    text, whole = whole_lines(path, "a results file of `dfdetect predict`")
    paths = _read_csv(path, text, columns) if fmt == "csv" else _read_jsonl(path, text)
    if whole < path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(whole)
    return paths


def whole_lines(path: Path, what: str) -> tuple[str, int]:
    """The text of `path` up to its last whole line (a line cut short by a killed writer left out), and how many
    bytes that is. DfdetectError naming the file, as not `what`, if it is not UTF-8 text."""
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    try:
        return whole.decode("utf-8"), len(whole)
    except UnicodeDecodeError as error:
        raise DfdetectError(f"{path}: not {what} (not UTF-8 text: {error})") from None


def open_rows(path: Path, append: bool) -> tuple[TextIO, bool]:
    """A text file to write rows to, and whether it starts empty: started afresh, or with `append` added to where
    it already holds something."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not append or not path.is_file() or path.stat().st_size == 0
    return path.open("w" if fresh else "a", newline="", encoding="utf-8"), fresh


def _read_csv(path: Path, text: str, columns: list[str]) -> dict[str, str | None]:
    if not text:
        return {}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames != columns:
        raise DfdetectError(
            f"{path}: its columns ({', '.join(reader.fieldnames or [])}) are not this run's "
            f"({', '.join(columns)}); resume with the inputs it was started with, or write to a new file"
        )
    return {row["path"]: row["model"] or None for row in reader}


def _read_jsonl(path: Path, text: str) -> dict[str, str | None]:
    paths = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            paths[str(row["path"])] = row.get("model")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DfdetectError(f"{path}, line {number}: not a row of `dfdetect predict --format jsonl`") from None
    return paths


def keep_rows_of(path: Path, paths: set[str] | dict[str, str | None], header: list[str]) -> None:
    """Cut a side file of an interrupted run (`--per-face`, `--per-frame`: CSV with `header`, the path first) back
    to the rows of `paths`, the files its results file holds: rows of the batch a crash stopped, and a line cut
    short, go, so the resumed run writes them once. Replaced in one step (a crash here leaves it whole).
    DfdetectError, naming the file, if its header is not `header` (it is left as it is)."""
    if not path.is_file():
        return
    text, _ = whole_lines(path, "a `--per-face` or `--per-frame` file of `dfdetect predict`")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return
    if rows[0] != header:
        raise DfdetectError(
            f"{path}: its columns ({', '.join(rows[0])}) are not {', '.join(header)}; resume with the file the run "
            "wrote, or name a new one"
        )
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(rows[0])
    writer.writerows(row for row in rows[1:] if row and row[0] in paths)
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    temporary.replace(path)


class ResultsFile:
    """Rows written to a CSV or JSON-lines file and flushed batch by batch: the file is started afresh, or with
    `append` added to (the CSV header is written only to an empty file)."""

    def __init__(self, path: Path, fmt: str, columns: list[str], append: bool = False) -> None:
        if fmt not in STREAMED_FORMATS:
            raise ValueError(f"a results file is written in {' or '.join(STREAMED_FORMATS)}, not {fmt}")
        self.handle, fresh = open_rows(path, append)
        self.writer = csv.DictWriter(self.handle, fieldnames=columns) if fmt == "csv" else None
        if self.writer is not None and fresh:
            self.writer.writeheader()

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.writer is not None:
            self.writer.writerows(csv_row(row) for row in rows)
        else:
            self.handle.writelines(json.dumps(row) + "\n" for row in rows)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
