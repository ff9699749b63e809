"""Reading weight files without running pickles: safetensors, or torch files with weights_only=True."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from dfdetect.errors import WeightsError


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict from .safetensors or a torch file (weights_only); unwraps {'state_dict': ...}."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            state: object = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: not a readable weights file ({error.__class__.__name__}: {error})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a dictionary of tensors (a state dict), found {type(state).__name__}")
    return dict(state)


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """load_state_dict(strict=True), turning a key or shape mismatch into an error naming the file."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        summary = str(error).splitlines()[0:3]
        raise WeightsError(f"{path}: weights do not fit the model: {' '.join(summary)[:600]}") from None
