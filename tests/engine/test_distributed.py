"""DistributedDataParallel through torchrun on the CPU (gloo, 2 processes) against a 1-process run."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from dfdetect.data.dataset import EpochSampler
from dfdetect.engine.distributed import DistributedContext, main_process_first
from tests.conftest import TINY_TRAIN_FLAGS

FLAGS = [*TINY_TRAIN_FLAGS, "--epochs", "2", "--device", "cpu", "--seed", "5", "--no-augment", "--lr", "3e-4"]
# BatchNorm sees half batches on each of the 2 ranks and float sums run in another order, so the runs are
# close, not identical (0.023 apart when measured): validation loss within 0.05, accuracy within 2 of 24 images.
VAL_LOSS_TOLERANCE, VAL_ACC_TOLERANCE = 0.05, 2 / 24 + 1e-9


def test_sampler_shards_cover_the_data_once_and_differ_by_epoch() -> None:
    shards = [list(EpochSampler(10, shuffle=True, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert {len(shard) for shard in shards} == {4}  # padded to equal length
    assert set().union(*map(set, shards)) == set(range(10))
    evaluation = [list(EpochSampler(10, shuffle=False, rank=r, world_size=3, pad=False)) for r in range(3)]
    assert sorted(index for shard in evaluation for index in shard) == list(range(10))
    sampler = EpochSampler(10, shuffle=True, seed=1, seeded=True)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and list(EpochSampler(10, shuffle=True, seed=1, seeded=True)) == first
    assert all(isinstance(item, tuple) and len(item) == 2 for item in first)


def read_history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_torchrun_two_processes_match_one_process(tiny_dataset: Path, tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not found beside the Python interpreter")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, multi = tmp_path / "single", tmp_path / "ddp"
    subprocess.run(
        [sys.executable, "-m", "dfdetect", "train", "--data", str(tiny_dataset), *FLAGS, "--out", str(single)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    result = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "dfdetect",
            "train",
            "--data",
            str(tiny_dataset),
            *FLAGS,
            "--out",
            str(multi),
        ],
        env=env,
        capture_output=True,
        timeout=300,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1 of 2" in result.stderr
    one, two = read_history(single), read_history(multi)
    assert [row["epoch"] for row in two] == ["1", "2"]
    for a, b in zip(one, two, strict=True):
        assert abs(float(a["val_loss"]) - float(b["val_loss"])) <= VAL_LOSS_TOLERANCE, (a, b)
        assert abs(float(a["val_acc"]) - float(b["val_acc"])) <= VAL_ACC_TOLERANCE, (a, b)
    assert (multi / "checkpoints" / "best.safetensors").is_file()


def _ordered_worker(rank: int, world_size: int, port: int, log: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        with main_process_first(DistributedContext(rank, world_size)):
            with open(log, "a") as handle:
                handle.write(f"{rank} start\n")
            if rank == 0:
                time.sleep(0.5)  # rank 1, were it not held back, would start meanwhile
            with open(log, "a") as handle:
                handle.write(f"{rank} end\n")
    finally:
        dist.destroy_process_group()


def test_main_process_first_runs_rank_0_before_the_others(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "order.txt"
    mp.spawn(_ordered_worker, args=(2, port, str(log)), nprocs=2, join=True)
    assert log.read_text().split("\n")[:4] == ["0 start", "0 end", "1 start", "1 end"]


def test_main_process_first_is_a_plain_block_without_torchrun() -> None:
    ran = []
    with main_process_first(DistributedContext()):
        ran.append(True)
    assert ran == [True]
