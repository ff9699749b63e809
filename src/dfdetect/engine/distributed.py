"""DistributedDataParallel glue for `torchrun`: process group, rank roles, gathering predictions."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job; a plain run is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and logs progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str) -> DistributedContext:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); a plain run is left alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    logger.info("distributed: rank %d of %d (%s)", rank, world_size, dist.get_backend())
    return DistributedContext(rank, world_size, local_rank)


def gather_predictions(
    labels: np.ndarray, scores: np.ndarray, context: DistributedContext
) -> tuple[np.ndarray, np.ndarray]:
    """Reassemble a split scored in shards (rank r scored items r, r + W, r + 2W, ...) into dataset order."""
    if not context.enabled:
        return labels, scores
    shards: list[tuple[np.ndarray, np.ndarray] | None] = [None] * context.world_size
    dist.all_gather_object(shards, (labels, scores))
    total = sum(len(shard[0]) for shard in shards if shard is not None)
    all_labels, all_scores = np.empty(total, dtype=labels.dtype), np.empty(total, dtype=scores.dtype)
    for rank, shard in enumerate(shards):
        assert shard is not None
        all_labels[rank :: context.world_size], all_scores[rank :: context.world_size] = shard
    return all_labels, all_scores


def all_agree(flag: bool, context: DistributedContext) -> bool:
    """Rank 0's decision, broadcast so that every rank stops (or goes on) together."""
    if not context.enabled:
        return flag
    decision = [flag]
    dist.broadcast_object_list(decision, src=0)
    return bool(decision[0])


@contextmanager
def main_process_first(context: DistributedContext) -> Iterator[None]:
    """Rank 0 runs the block before the other ranks start it (they wait at a barrier): for work done once whose
    result rank 0 writes to a file that the others then only read, like the landmarks of Train's faces."""
    if context.enabled and not context.is_main:
        dist.barrier()
    try:
        yield
    finally:
        if context.enabled and context.is_main:
            dist.barrier()


def cleanup(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
