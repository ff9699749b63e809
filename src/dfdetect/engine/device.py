"""Device choice and precision: bf16 autocast and channels_last on CUDA, and on CPUs with bf16 units when asked."""

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


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is slow emulation."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve a precision name: 'auto' is bf16 on CUDA and fp32 on CPU (the study's numbers); 'bf16' is bf16
    wherever the device has native bf16 units (CUDA, or a CPU with AVX512-BF16/AMX), else fp32; 'fp32' is fp32."""
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return True
    return precision == "bf16" and cpu_has_bf16_units()


def memory_format(device: torch.device, bf16: bool | None = None) -> torch.memory_format:
    """channels_last on CUDA and for bf16 on CPU (oneDNN's fast kernels are NHWC); the default layout else."""
    channels_last = device.type == "cuda" if bf16 is None else bf16 or device.type == "cuda"
    return torch.channels_last if channels_last else torch.contiguous_format


@contextlib.contextmanager
def autocast(device: torch.device, bf16: bool | None = None) -> Iterator[None]:
    """bf16 autocast (no loss scaling needed) when `bf16` (default: on CUDA only); full fp32 otherwise."""
    enabled = device.type == "cuda" if bf16 is None else bf16
    if enabled:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def place_model(model: torch.nn.Module, device: torch.device, bf16: bool | None = None) -> torch.nn.Module:
    """Move a model to `device` in the memory format that suits it."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    return model.to(device).to(memory_format=memory_format(device, bf16))


def default_workers(requested: int) -> int:
    """DataLoader workers: -1 means one per core, at most 8."""
    if requested >= 0:
        return requested
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
