"""Search space, sampling, outputs, resume after kill -9, and two processes sharing a PostgreSQL study."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dfdetect.config import TrainConfig, load_config
from dfdetect.tuning import DEFAULT_SEARCH_SPACE, TuneError, load_search_space, parse_search_space, tune

TUNE_FLAGS = ["--model", "own_cnn", "--epochs", "1", "--image-size", "32", "--workers", "0", "--fraction", "0.5"]


def test_default_space_is_table_1() -> None:
    space = parse_search_space(DEFAULT_SEARCH_SPACE)
    assert space["lr"].describe() == "uniform [1e-05, 0.001]"
    assert space["weight_decay"].describe() == "uniform [0, 0.01]"
    assert space["dropout"].describe() == "uniform [0.1, 0.5]"
    assert space["batch_size"].describe() == "{32, 64, 128}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"learning_rate": {"distribution": "uniform", "low": 0, "high": 1}}, "unknown key 'learning_rate'"),
        ({"lr": {"distribution": "uniform", "low": 1e-3, "high": 1e-5}}, "impossible range"),
        ({"dropout": {"distribution": "uniform", "low": 0.1, "high": 1.5}}, "dropout: value 1.5 is not allowed"),
        ({"batch_size": {"distribution": "categorical", "choices": []}}, "non-empty list"),
        ({"lr": {"distribution": "normal", "low": 0, "high": 1}}, "distribution one of"),
        ({"lr": {"distribution": "log_uniform", "low": 0, "high": 1}}, "log_uniform needs low > 0"),
        ({"lr": {"distribution": "uniform", "low": 1e-5, "hi": 1}}, "unknown option"),
        ({"data": {"distribution": "categorical", "choices": ["a"]}}, "unknown key 'data'"),
        ({}, "empty"),
    ],
)
def test_bad_search_spaces_are_named(raw: dict, message: str) -> None:
    with pytest.raises(TuneError, match=message):
        parse_search_space(raw)


def test_search_space_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("lr: {distribution: uniform, low: 1.0, high: 0.5}\n")
    with pytest.raises(TuneError, match=r"space\.yaml: .*impossible range"):
        load_search_space(path)


def test_sampling_stays_inside_the_ranges() -> None:
    space = parse_search_space(DEFAULT_SEARCH_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        trial = study.ask()
        values = {name: parameter.suggest(trial) for name, parameter in space.items()}
        study.tell(trial, 0.0)
        assert 1e-5 <= values["lr"] <= 1e-3 and 0 <= values["weight_decay"] <= 1e-2
        assert 0.1 <= values["dropout"] <= 0.5 and values["batch_size"] in {32, 64, 128}
        TrainConfig(**values)


def test_tune_writes_outputs_and_best_yaml_round_trips(tiny_dataset: Path, tmp_path: Path) -> None:
    base = load_config(
        None, {"data": tiny_dataset, "model": "own_cnn", "epochs": 1, "image_size": 32, "workers": 0, "fraction": 0.5}
    )
    result = tune(base, tmp_path / "tune", trials=2)
    rows = (tmp_path / "tune" / "trials.csv").read_text().splitlines()
    assert rows[0].split(",") == [
        "number",
        "lr",
        "weight_decay",
        "dropout",
        "batch_size",
        "best_val_loss",
        "val_acc",
        "epochs",
        "seconds",
        "state",
    ]
    assert len(rows) == 3 and all(row.endswith("COMPLETE") for row in rows[1:])
    assert "| max learning rate (`lr`) | uniform [1e-05, 0.001] |" in result.files["table1"].read_text()
    assert result.files["plot"].is_file()
    trained = load_config(result.files["best"], {"out": str(tmp_path / "final")})
    assert (
        trained.lr == pytest.approx(result.best_params["lr"]) and trained.batch_size == result.best_params["batch_size"]
    )
    assert trained.fraction == 1.0 and trained.data == tiny_dataset


def test_bad_storage_url_is_a_clear_error(tiny_dataset: Path, tmp_path: Path) -> None:
    base = load_config(None, {"data": tiny_dataset, "epochs": 1, "image_size": 32, "workers": 0})
    with pytest.raises(TuneError, match="cannot open study storage"):
        tune(base, tmp_path, trials=1, storage="notadb://nowhere")
    with pytest.raises(TuneError, match=r"postgresql://user:\*\*\*@127\.0\.0\.1:1/x"):
        tune(base, tmp_path, trials=1, storage="postgresql://user:secret@127.0.0.1:1/x")


def run_tune(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dfdetect", "tune", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def trial_states(database: Path) -> list[str]:
    try:
        with sqlite3.connect(database) as connection:
            return [row[0] for row in connection.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.OperationalError:  # the file exists but Optuna has not created its tables yet
        return []


def test_killed_study_resumes_to_exactly_the_requested_trials(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    flags = ["--data", str(tiny_dataset), *TUNE_FLAGS, "--epochs", "3", "--image-size", "64", "--out", str(out)]
    process = run_tune(*flags, "--trials", "3")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        states = trial_states(out / "study.db") if (out / "study.db").is_file() else []
        if states == ["COMPLETE", "RUNNING"]:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[0].decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    base = load_config(
        None, {"data": tiny_dataset, "model": "own_cnn", "epochs": 3, "image_size": 64, "workers": 0, "fraction": 0.5}
    )
    result = tune(base, out, trials=3, grace_seconds=2, poll_seconds=0.5)
    states = [t.state for t in result.study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 3
    assert states[1] == TrialState.FAIL  # the killed trial never counts


def find_postgres() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback, started and removed by the test."""
    bindir = find_postgres()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="dfdetect-pg-"))
    base.chmod(0o755)
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        shutil.chown(base, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=50"
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install 'dfdetect[postgres]'")
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as db:
            db.execute("CREATE DATABASE dfdetect")
        yield f"postgresql://postgres@127.0.0.1:{port}/dfdetect"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


def test_two_processes_share_one_postgres_study(tiny_dataset: Path, tmp_path: Path, postgres_url: str) -> None:
    common = ["--data", str(tiny_dataset), *TUNE_FLAGS, "--storage", postgres_url, "--study", "shared", "--trials", "4"]
    processes = [run_tune(*common, "--out", str(tmp_path / f"machine-{index}")) for index in range(2)]
    outputs = [process.communicate(timeout=600)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [output[-1500:] for output in outputs]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(completed) == 4
    assert len({t.number for t in trials}) == len(trials)
    folders = [p.name for index in range(2) for p in (tmp_path / f"machine-{index}" / "trials").glob("trial-*")]
    assert len(folders) == len(set(folders))  # no trial trained twice
    assert all("trials.csv" in " ".join(os.listdir(tmp_path / f"machine-{i}")) for i in range(2))


def test_a_trial_killed_before_its_first_heartbeat_is_failed(tmp_path: Path) -> None:
    from dfdetect.tuning import fail_trials_killed_before_a_heartbeat, open_study

    study = open_study(
        f"sqlite:///{tmp_path / 'study.db'}",
        "s",
        optuna.samplers.RandomSampler(seed=0),
        optuna.pruners.NopPruner(),
        grace_seconds=2,
    )
    orphan = study.ask()  # RUNNING, and no heartbeat thread ever starts for it: like a process killed at once
    fail_trials_killed_before_a_heartbeat(study, grace_seconds=60)
    assert study.get_trials()[0].state == TrialState.RUNNING  # too recent to call dead
    time.sleep(0.05)
    fail_trials_killed_before_a_heartbeat(study, grace_seconds=0)
    assert study.get_trials()[0].state == TrialState.FAIL
    assert orphan.number == 0


@pytest.mark.parametrize(
    "race",
    [
        'relation "alembic_version" already exists',  # PostgreSQL, two processes creating the tables at once
        "table studies already exists",  # SQLite
    ],
)
def test_opening_a_study_retries_when_another_process_created_the_tables_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    import sqlalchemy.exc

    from dfdetect import tuning

    calls = []

    class LosesTheRaceOnce(optuna.storages.RDBStorage):
        def __init__(self, *args: object, **kwargs: object) -> None:
            calls.append(args)
            if len(calls) == 1:
                raise sqlalchemy.exc.ProgrammingError("CREATE TABLE", {}, Exception(race))
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(optuna.storages, "RDBStorage", LosesTheRaceOnce)
    monkeypatch.setattr(tuning.time, "sleep", lambda seconds: None)
    study = tuning.open_study(
        f"sqlite:///{tmp_path / 'study.db'}", "s", optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner()
    )
    assert len(calls) == 2 and study.study_name == "s"


def test_a_storage_error_that_is_not_a_race_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy.exc

    from dfdetect import tuning

    calls = []

    def denied(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise sqlalchemy.exc.ProgrammingError("CREATE TABLE", {}, Exception("permission denied for schema public"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", denied)
    url = "postgresql://user:secret@db.example/dfdetect"
    with pytest.raises(TuneError, match="permission denied") as error:
        tuning.open_study(url, "s", optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner())
    assert len(calls) == 1 and "secret" not in str(error.value)
