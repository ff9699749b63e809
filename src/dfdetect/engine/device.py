"""Device choice and precision: CUDA with bf16 autocast and channels_last when present, else fp32 CPU."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from dfdetect.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine; use --device cpu")
    return device


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA (tensor cores prefer NHWC); the default layout on CPU."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """bf16 autocast on CUDA (no loss scaling needed); full fp32 elsewhere."""
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to `device` in the memory format that suits it."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    return model.to(device).to(memory_format=memory_format(device))


def default_workers(requested: int) -> int:
    """DataLoader workers: -1 means one per core, at most 8."""
    if requested >= 0:
        return requested
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
