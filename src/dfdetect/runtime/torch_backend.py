"""TorchPredictor: checkpoint -> preprocessing -> P(Real) in PyTorch; evaluation, explanations and the OpenVINO
path build on it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dfdetect.calibration import ThresholdChoice
from dfdetect.data.transforms import build_eval_transform
from dfdetect.engine.checkpoint import load_checkpoint, resolve_checkpoint
from dfdetect.engine.device import autocast, memory_format, place_model, resolve_device
from dfdetect.models import Detector, count_parameters
from dfdetect.models.router import build_detector
from dfdetect.run_folder import RunFolder
from dfdetect.runtime.base import BasePredictor

logger = logging.getLogger(__name__)

__all__ = ["TorchPredictor", "load_model"]


def find_test_metrics(checkpoint: Path) -> dict[str, Any] | None:
    """Test metrics written beside a run by `evaluate` or `experiment`, if any."""
    found = RunFolder.of_checkpoint(checkpoint).test_metrics_file()
    if found is not None:
        metrics: dict[str, Any] = json.loads(found.read_text(encoding="utf-8"))
        return metrics
    return None


def load_model(checkpoint: Path) -> tuple[Detector, dict[str, Any]]:
    """Rebuild a trained detector from a run folder or checkpoint file; returns (model, metadata)."""
    path = resolve_checkpoint(checkpoint)
    state, metadata, _ = load_checkpoint(path)
    model = build_detector(metadata)
    model.load_state_dict(state)
    model.eval()
    metadata["parameters"] = count_parameters(model)
    metadata["test_metrics"] = find_test_metrics(path)
    return model, metadata


class TorchPredictor(BasePredictor):
    """Scores images with a trained detector in PyTorch; safe for concurrent calls (inference only)."""

    runtime = "torch"
    supports_explain = True

    def __init__(
        self,
        model: Detector,
        metadata: dict[str, Any] | None = None,
        device: str = "auto",
        threshold: ThresholdChoice = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model
        place_model(model, self.device).eval()
        self.metadata = metadata or {"model": model.name, "parameters": count_parameters(model)}
        self.preprocessing = model.preprocessing
        self.transform = build_eval_transform(self.preprocessing)
        self.use_stored_calibration(threshold)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Path, device: str = "auto", threshold: ThresholdChoice = None
    ) -> TorchPredictor:
        model, metadata = load_model(checkpoint)
        return cls(model, metadata, device=device, threshold=threshold)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(image) for image in images])

    @torch.inference_mode()
    def predict_tensor(self, batch: torch.Tensor) -> np.ndarray:
        """The model's own P(Real) (before calibration) for a batch of already preprocessed images."""
        batch = batch.to(self.device, memory_format=memory_format(self.device))
        with autocast(self.device):
            logits = self.model(batch)
        return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64)

    def score_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.predict_tensor(self.preprocess(images))
