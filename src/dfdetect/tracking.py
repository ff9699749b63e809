"""Experiment tracking with MLflow or TensorBoard (`--track mlflow|tensorboard`); neither is imported unless asked.

A tracker logs a run's configuration, every epoch's metrics, the final metrics and the artifacts (curves,
confusion matrices, reports). Runs nest: `dfdetect tune` logs each trial as a child of the study's run, and
`dfdetect experiment` each model as a child of the experiment's run.

- MLflow: a local store in `<out>/mlruns/` by default (SQLite `mlflow.db` and an `artifacts/` folder; MLflow 3
  no longer writes plain-file stores), or `--tracking-uri` for a tracking server or another database.
  See it with `mlflow ui --backend-store-uri sqlite:///<out>/mlruns/mlflow.db`.
- TensorBoard: event files in `<out>/tensorboard/<run>/` (a child run in a subfolder of its parent's);
  scalars per epoch, the configuration and text artifacts as text, PNG artifacts as images.
  See it with `tensorboard --logdir <out>/tensorboard`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dfdetect.errors import ConfigError

logger = logging.getLogger(__name__)

TRACKERS = ("mlflow", "tensorboard")
TEXT_SUFFIXES = {".md", ".yaml", ".yml", ".csv", ".txt", ".json"}


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{'augment': {'jpeg_p': 0.1}} -> {'augment.jpeg_p': '0.1'}: one string per setting, as trackers store them."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers among `metrics` (None, NaN, lists and strings are not scalars to plot)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


class Tracker:
    """The interface, and what runs when no tracking was asked for: every call does nothing."""

    def start_run(self, name: str, params: dict[str, Any]) -> None:
        """Open a run (a child of the open one, if any) and log its parameters."""

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log the numeric entries of `metrics` (at `step`, e.g. the epoch)."""

    def log_artifact(self, path: Path) -> None:
        """Attach a file (a figure, a report, a config) to the open run; a missing file is skipped."""

    def end_run(self, failed: bool = False) -> None:
        """Close the innermost open run."""

    @contextlib.contextmanager
    def run(self, name: str, params: dict[str, Any] | None = None) -> Iterator[Tracker]:
        """`with tracker.run(name, params):` opens a run and closes it, marked failed if the block raised."""
        self.start_run(name, params or {})
        try:
            yield self
        except BaseException:
            self.end_run(failed=True)
            raise
        self.end_run()

    def log_artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            if path.is_file():
                self.log_artifact(path)


class MlflowTracker(Tracker):
    """Runs in an MLflow tracking store (local SQLite under `root/mlruns` unless `uri` names another)."""

    def __init__(self, root: Path, uri: str | None = None, experiment: str = "dfdetect") -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--track mlflow needs MLflow: pip install 'dfdetect[track]' (or mlflow)") from None
        self.mlflow = mlflow
        store = root / "mlruns"
        if uri is None:
            store.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{(store / 'mlflow.db').resolve()}"
        mlflow.set_tracking_uri(uri)
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            artifacts = (store / "artifacts").resolve().as_uri() if uri.startswith("sqlite:///") else None
            self.experiment_id = mlflow.create_experiment(experiment, artifact_location=artifacts)
        else:
            self.experiment_id = found.experiment_id
        self.uri = uri
        self.depth = 0

    def start_run(self, name: str, params: dict[str, Any]) -> None:
        self.mlflow.start_run(run_name=name, experiment_id=self.experiment_id, nested=self.depth > 0)
        self.depth += 1
        if params:
            self.mlflow.log_params(flat_params(params))

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        values = numeric(metrics)
        if values:
            self.mlflow.log_metrics(values, step=step)

    def log_artifact(self, path: Path) -> None:
        self.mlflow.log_artifact(str(path))

    def end_run(self, failed: bool = False) -> None:
        self.mlflow.end_run(status="FAILED" if failed else "FINISHED")
        self.depth -= 1


class TensorBoardTracker(Tracker):
    """Event files under `root/tensorboard/<run>/`, a child run in a subfolder of its parent's."""

    def __init__(self, root: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--track tensorboard needs TensorBoard: pip install 'dfdetect[track]'") from None
        self.writer_class = SummaryWriter
        self.root = root / "tensorboard"
        self.stack: list[tuple[Path, Any]] = []

    def start_run(self, name: str, params: dict[str, Any]) -> None:
        folder = (self.stack[-1][0] if self.stack else self.root) / name
        writer = self.writer_class(log_dir=str(folder))
        self.stack.append((folder, writer))
        if params:
            writer.add_text("config", "```\n" + yaml.safe_dump(params, sort_keys=False) + "```")

    @property
    def writer(self) -> Any:
        if not self.stack:
            raise RuntimeError("no open TensorBoard run: call start_run first")
        return self.stack[-1][1]

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        for key, value in numeric(metrics).items():
            self.writer.add_scalar(key, value, global_step=step)

    def log_artifact(self, path: Path) -> None:
        if path.suffix.lower() == ".png":
            import numpy as np
            from PIL import Image

            with Image.open(path) as image:
                self.writer.add_image(path.stem, np.asarray(image.convert("RGB")), dataformats="HWC")
        elif path.suffix.lower() in TEXT_SUFFIXES:
            self.writer.add_text(path.name, "```\n" + path.read_text(encoding="utf-8")[:100_000] + "\n```")
        else:
            logger.info("TensorBoard keeps no files of type %s: %s not logged", path.suffix, path)

    def end_run(self, failed: bool = False) -> None:
        _, writer = self.stack.pop()
        if failed:
            writer.add_text("status", "FAILED")
        writer.close()


def create_tracker(kind: str | None, root: Path, uri: str | None = None) -> Tracker:
    """The tracker `--track` asks for (none: a Tracker that does nothing); its local files go under `root`."""
    if kind is None or kind == "none":
        return Tracker()
    if kind == "mlflow":
        return MlflowTracker(root, uri)
    if kind == "tensorboard":
        if uri is not None:
            raise ConfigError("--tracking-uri is for MLflow; TensorBoard writes under the run's output folder")
        return TensorBoardTracker(root)
    raise ConfigError(f"unknown tracker {kind!r}; known: {', '.join(TRACKERS)}")
