"""The loops every job shares: one training step, one pass over the training data, scoring a whole loader.

The trainer, evaluation, the demo, experiments, the search and the throughput bench all use these, so a
change of precision or memory format reaches each of them the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from dfdetect.engine.device import autocast, memory_format
from dfdetect.engine.distributed import DistributedContext

Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]
"""Wraps a batch iterable for display: (iterable, description, total) -> iterable. If what it returns has
`set_postfix`, the trainer reports loss and images/s through it (tqdm does)."""


def no_progress(iterable: Iterable[Any], description: str, total: int) -> Iterable[Any]:
    return iterable


@dataclass
class EpochStats:
    """Sums over one training epoch; `reduced` adds them up over all ranks."""

    loss_sum: float
    correct: int
    seen: int

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.seen, 1)

    def reduced(self, context: DistributedContext) -> EpochStats:
        if not context.enabled:
            return self
        totals = torch.tensor([self.loss_sum, self.correct, self.seen], dtype=torch.float64)
        torch.distributed.all_reduce(totals)
        return EpochStats(float(totals[0]), int(totals[1]), int(totals[2]))


def training_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    bf16: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch already on the device (bf16 autocast on CUDA, or when `bf16`);
    returns (loss, logits)."""
    with autocast(device, bf16):
        logits = model(images)
    loss = criterion(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    progress: Progress = no_progress,
    description: str = "train",
    bf16: bool | None = None,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    after_step: Callable[[], None] | None = None,
) -> EpochStats:
    """One pass over the training data; returns the loss and accuracy sums over all its images.

    `step_scheduler`, when given, is stepped after every batch (warm-up + cosine), and `after_step` called (the
    weight EMA's update); the loss is on the criterion's targets, the accuracy on the true labels."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = progress(loader, description, len(loader))
    for images, labels in bar:
        images = images.to(device, non_blocking=True, memory_format=memory_format(device, bf16))
        labels = labels.to(device, non_blocking=True)
        loss, logits = training_step(model, images, labels, criterion, optimizer, device, bf16)
        if step_scheduler is not None:
            step_scheduler.step()
        if after_step is not None:
            after_step()
        batch = labels.numel()
        total_loss += loss.item() * batch
        correct += int(((logits.detach() >= 0).float() == labels).sum().item())
        seen += batch
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", img_s=f"{seen / (time.perf_counter() - start):.1f}")
    return EpochStats(total_loss, correct, seen)


@torch.no_grad()
def predict_loader(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    progress: Progress = no_progress,
    description: str = "eval",
    bf16: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score a whole loader; returns (labels, P(Real)) as arrays, collected before any metric is computed."""
    model.eval()
    all_labels, all_scores = [], []
    for images, labels in progress(loader, description, len(loader)):
        images = images.to(device, non_blocking=True, memory_format=memory_format(device, bf16))
        with autocast(device, bf16):
            logits = model(images)
        all_scores.append(torch.sigmoid(logits.float()).cpu())
        all_labels.append(labels.cpu())  # the device cache yields labels already on the GPU
    return torch.cat(all_labels).numpy().astype(int), torch.cat(all_scores).numpy().astype(np.float64)
