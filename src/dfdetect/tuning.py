"""Hyperparameter search over the trainer with Optuna: the study's random search, resumable and shareable.

Each trial trains on the same stratified fraction of Train until early stopping and reports its best
validation loss. The study lives in a database (SQLite in the output folder by default; PostgreSQL or any
SQLAlchemy URL to share it between machines). Trials send heartbeats, so a trial whose process was killed
is marked failed and never counts; every process stops once the study holds the requested number of
completed trials, and a trial started beyond that number is marked failed as surplus, so none is counted twice.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import random
import re
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from dfdetect.config import ConfigError, TrainConfig, read_yaml
from dfdetect.engine.loops import Progress, no_progress
from dfdetect.engine.trainer import fit, prepare_data
from dfdetect.errors import TuneError
from dfdetect.reporting.plots import plot_search_history, save_figure
from dfdetect.reporting.tables import markdown_table
from dfdetect.run_folder import RunFolder
from dfdetect.tracking import Tracker

logger = logging.getLogger(__name__)

DISTRIBUTIONS = ("uniform", "log_uniform", "int", "categorical")
NOT_SEARCHABLE = {"data", "out", "model", "weights_file", "device", "workers", "augment", "seed"}
DESCRIPTIONS = {
    "lr": "max learning rate",
    "weight_decay": "weight decay",
    "dropout": "dropout rate",
    "batch_size": "batch size",
}


@dataclass(frozen=True)
class SearchParameter:
    """One searched hyperparameter: a distribution over a TrainConfig key."""

    name: str
    distribution: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.distribution == "categorical":
            return "{" + ", ".join(str(choice) for choice in self.choices) + "}"
        return f"{self.distribution} [{self.low:g}, {self.high:g}]"

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.distribution == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.distribution == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, self.low, self.high, log=self.distribution == "log_uniform")


# The study's Table 1.
DEFAULT_SEARCH_SPACE: dict[str, Any] = {
    "lr": {"distribution": "uniform", "low": 1e-5, "high": 1e-3},
    "weight_decay": {"distribution": "uniform", "low": 0.0, "high": 1e-2},
    "dropout": {"distribution": "uniform", "low": 0.1, "high": 0.5},
    "batch_size": {"distribution": "categorical", "choices": [32, 64, 128]},
}


def parse_search_space(raw: dict[str, Any], base: TrainConfig | None = None) -> dict[str, SearchParameter]:
    """Validate a search space mapping; every value at the ends of a range must be a valid config value."""
    base = base or TrainConfig()
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - NOT_SEARCHABLE
    space: dict[str, SearchParameter] = {}
    for name, spec in raw.items():
        if name not in fields:
            raise TuneError(f"search space: unknown key {name!r}; searchable keys: {', '.join(sorted(fields))}")
        if not isinstance(spec, dict) or spec.get("distribution") not in DISTRIBUTIONS:
            raise TuneError(f"search space: {name}: expected a mapping with distribution one of {DISTRIBUTIONS}")
        unknown = set(spec) - {"distribution", "low", "high", "choices"}
        if unknown:
            raise TuneError(f"search space: {name}: unknown option(s) {', '.join(sorted(unknown))}")
        if spec["distribution"] == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise TuneError(f"search space: {name}: categorical needs a non-empty list of choices")
            parameter = SearchParameter(name, "categorical", choices=tuple(choices))
            candidates = list(choices)
        else:
            try:
                low, high = float(spec["low"]), float(spec["high"])
            except (KeyError, TypeError, ValueError):
                raise TuneError(f"search space: {name}: needs numeric low and high") from None
            if not low < high:
                raise TuneError(f"search space: {name}: impossible range, low {low:g} must be below high {high:g}")
            if spec["distribution"] == "log_uniform" and low <= 0:
                raise TuneError(f"search space: {name}: log_uniform needs low > 0, got {low:g}")
            parameter = SearchParameter(name, spec["distribution"], low, high)
            candidates = [low, high]
        for value in candidates:
            try:
                base.replace(**{name: value})
            except ConfigError as error:
                raise TuneError(f"search space: {name}: value {value!r} is not allowed ({error})") from None
        space[name] = parameter
    if not space:
        raise TuneError("search space: empty; name at least one hyperparameter")
    return space


def load_search_space(path: Path | None, base: TrainConfig | None = None) -> dict[str, SearchParameter]:
    """The search space from a YAML file, or the study's Table 1."""
    if path is None:
        return parse_search_space(DEFAULT_SEARCH_SPACE, base)
    try:
        return parse_search_space(read_yaml(path), base)
    except TuneError as error:
        raise TuneError(f"{path}: {error}") from None


def mask_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def lost_creation_race(error: Exception) -> bool:
    """Whether a storage error means another process created the same tables or rows first."""
    import sqlalchemy.exc

    return isinstance(error, sqlalchemy.exc.IntegrityError) or (
        isinstance(error, (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError))
        and "already exists" in str(error)
    )


def storage_error(storage_url: str, error: Exception) -> TuneError:
    reason = first_line(error)
    if "DB access module" in reason and storage_url.startswith("postgresql"):
        reason += " (for PostgreSQL: pip install 'dfdetect[postgres]')"
    return TuneError(f"cannot open study storage {mask_password(storage_url)}: {reason}")


def open_study(
    storage_url: str,
    study_name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    grace_seconds: int = 20,
) -> optuna.Study:
    """Create or load a study; an unreachable or malformed storage URL raises TuneError."""
    import sqlalchemy.exc

    heartbeat = max(1, min(5, grace_seconds // 2))
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats since Optuna 2.9
                storage = optuna.storages.RDBStorage(
                    storage_url, heartbeat_interval=heartbeat, grace_period=grace_seconds
                )
            return optuna.create_study(
                storage=storage,
                study_name=study_name,
                sampler=sampler,
                pruner=pruner,
                direction="minimize",
                load_if_exists=True,
            )
        except sqlalchemy.exc.SQLAlchemyError as error:
            if not lost_creation_race(error):
                raise storage_error(storage_url, error) from None
            # Processes that start together race to create Optuna's tables (PostgreSQL answers a duplicate key or
            # "relation ... already exists", SQLite "table ... already exists"); the loser retries and finds them.
            logger.info("study storage is being created by another process; retrying (%d)", attempt + 1)
            time.sleep(0.5 + random.random())
        except (ImportError, ValueError) as error:
            raise storage_error(storage_url, error) from None
    raise TuneError(f"cannot open study storage {mask_password(storage_url)}: table creation kept conflicting")


class SurplusTrial(RuntimeError):
    """Raised inside a trial that started after the study already had enough trials (another process won)."""


def count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


@dataclass
class TuneResult:
    """The finished search: the study, and the files written."""

    study: optuna.Study
    best_params: dict[str, Any]
    best_value: float
    files: dict[str, Path]


def make_sampler(name: str, seed: int, shared: bool) -> optuna.samplers.BaseSampler:
    """random (the study's method) or tpe; processes sharing a study get distinct seeds."""
    sampler_seed = (seed * 1_000_003 + os.getpid()) % 2**32 if shared else seed
    if name == "random":
        return optuna.samplers.RandomSampler(seed=sampler_seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=sampler_seed)
    raise TuneError(f"unknown sampler {name!r}; expected random or tpe")


def tune(
    base: TrainConfig,
    out: Path,
    trials: int = 5,
    space: dict[str, SearchParameter] | None = None,
    sampler: str = "random",
    storage: str | None = None,
    study_name: str = "dfdetect",
    prune: bool = False,
    poll_seconds: float = 5.0,
    grace_seconds: int = 20,
    progress: Progress = no_progress,
    tracker: Tracker | None = None,
) -> TuneResult:
    """Run (or continue) the search until the study holds `trials` completed trials; write its outputs.

    With a `tracker`, the study is one run and each trial a child run of it.

    A running trial whose heartbeat is older than `grace_seconds` belongs to a dead process and is failed.
    """
    if trials < 1:
        raise TuneError(f"trials must be >= 1; got {trials}")
    space = space or load_search_space(None, base)
    out.mkdir(parents=True, exist_ok=True)
    storage_url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if prune else optuna.pruners.NopPruner()
    study = open_study(
        storage_url, study_name, make_sampler(sampler, base.seed, storage is not None), pruner, grace_seconds
    )
    data = prepare_data(base)  # one pre-scan and one stratified fraction for every trial
    tracker = tracker or Tracker()

    def objective(trial: optuna.Trial) -> float:
        ahead = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
            if t.number < trial.number
        ]
        if len(ahead) >= trials:
            raise SurplusTrial(f"trial {trial.number} not needed: {trials} trials were already done or running")
        params = {name: parameter.suggest(trial) for name, parameter in space.items()}
        config = base.replace(**params, out=out / "trials" / f"trial-{trial.number:04d}")
        logger.info("trial %d: %s", trial.number, params)

        def report(row: dict[str, float]) -> None:
            trial.report(row["val_loss"], int(row["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {int(row['epoch'])}: val loss {row['val_loss']:.4f}")

        with tracker.run(f"trial-{trial.number:04d}", config.to_dict()):
            result = fit(config, data=data, progress=progress, on_epoch=report if prune else None, tracker=tracker)
        best_row = next(row for row in result.history if int(row["epoch"]) == result.best_epoch)
        trial.set_user_attr("val_acc", best_row["val_acc"])
        trial.set_user_attr("val_auc", best_row["val_auc"])
        trial.set_user_attr("epochs", result.epochs_run)
        trial.set_user_attr("seconds", result.seconds)
        # The training state (optimizer moments) is only needed to resume; a finished trial keeps `best`.
        RunFolder(result.run_dir).last.unlink(missing_ok=True)
        return result.best_val_loss

    with tracker.run(f"study-{study_name}", {**base.to_dict(), "trials": trials, "sampler": sampler}):
        while (done := count(study, TrialState.COMPLETE)) < trials:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            fail_trials_killed_before_a_heartbeat(study, grace_seconds)
            running = count(study, TrialState.RUNNING)
            if done + running >= trials:
                logger.info("waiting for %d running trial(s) to finish (%d/%d complete)", running, done, trials)
                time.sleep(poll_seconds)
                continue
            study.optimize(objective, n_trials=1, catch=(SurplusTrial,), gc_after_trial=True)

        files = write_outputs(study, space, base, out)
        tracker.log_metrics({"best_val_loss": study.best_value, "completed_trials": trials})
        tracker.log_artifacts(list(files.values()))
    return TuneResult(study, study.best_params, study.best_value, files)


def fail_trials_killed_before_a_heartbeat(study: optuna.Study, grace_seconds: int) -> None:
    """Fail running trials that never sent a heartbeat and started over `grace_seconds` ago.

    Optuna's stale-trial check skips trials without a heartbeat, so a process killed in the instant between
    creating a trial and its first heartbeat would leave a trial RUNNING forever, and the study waiting on it.
    A live trial sends its first heartbeat at once, so such a trial is dead.
    """
    storage = study._storage  # the RDBStorage open_study made, inside Optuna's cache wrapper
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is None:
        return
    from sqlalchemy.orm import Session, selectinload

    try:
        from optuna.storages._rdb import models
    except ImportError:  # Optuna moved its internals: its own check still covers the common case
        return
    cutoff = datetime.now() - timedelta(seconds=grace_seconds)  # Optuna stores datetime_start as local time
    with Session(engine) as session:
        running = (
            session.query(models.TrialModel)
            .options(selectinload(models.TrialModel.heartbeats))
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .all()
        )
        dead = [
            t.trial_id
            for t in running
            if not t.heartbeats and t.datetime_start and t.datetime_start < cutoff and t.study_id == study._study_id
        ]
    for trial_id in dead:
        logger.warning("trial id %d never sent a heartbeat: marking it failed", trial_id)
        storage.set_trial_state_values(int(trial_id), state=TrialState.FAIL)


def trial_rows(study: optuna.Study, space: dict[str, SearchParameter]) -> list[dict[str, Any]]:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": trial.number,
                **{name: trial.params.get(name) for name in space},
                "best_val_loss": trial.value,
                "val_acc": trial.user_attrs.get("val_acc"),
                "epochs": trial.user_attrs.get("epochs"),
                "seconds": trial.user_attrs.get("seconds"),
                "state": trial.state.name,
            }
        )
    return rows


def format_best(value: Any) -> str:
    """Four significant digits: learning rates are small numbers."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_outputs(
    study: optuna.Study, space: dict[str, SearchParameter], base: TrainConfig, out: Path
) -> dict[str, Path]:
    """trials.csv, table1.md, best.yaml (a `train --config` file) and val_loss.png."""
    rows = trial_rows(study, space)
    files = {
        "trials": out / "trials.csv",
        "table1": out / "table1.md",
        "best": out / "best.yaml",
        "plot": out / "val_loss.png",
    }
    with files["trials"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    best: FrozenTrial = study.best_trial
    table = markdown_table(
        ["hyperparameter", "distribution", "best value"],
        [
            [f"{DESCRIPTIONS.get(name, name)} (`{name}`)", parameter.describe(), format_best(best.params[name])]
            for name, parameter in space.items()
        ],
    )
    completed = count(study, TrialState.COMPLETE)
    files["table1"].write_text(
        f"# Table 1: hyperparameter search\n\n{table}\n\nBest trial {best.number}: validation loss "
        f"{best.value:.4f} (accuracy {best.user_attrs.get('val_acc', float('nan')):.4f}); "
        f"{completed} completed trial(s), each trained on {base.fraction:.0%} of Train until early stopping.\n",
        encoding="utf-8",
    )
    # The study trained its final model on all of Train with the best values.
    final = base.replace(**best.params, fraction=1.0).to_dict()
    final.pop("out")
    files["best"].write_text(
        f"# best trial {best.number} of study {study.study_name!r}: val loss {best.value:.4f}\n"
        f"# dfdetect train --config {files['best']} --out RUN_DIR\n" + yaml.safe_dump(final, sort_keys=False),
        encoding="utf-8",
    )
    done = [row for row in rows if row["state"] == "COMPLETE"]
    figure = plot_search_history([row["number"] for row in done], [row["best_val_loss"] for row in done])
    save_figure(figure, files["plot"])
    return files
