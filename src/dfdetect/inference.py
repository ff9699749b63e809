"""Predictor: checkpoint -> preprocessing -> P(Real). The one path evaluation, the CLI and serving share."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dfdetect.data.images import DEFAULT_MAX_PIXELS, ImageLoadError, load_rgb
from dfdetect.data.transforms import Preprocessing, build_eval_transform
from dfdetect.engine.checkpoint import load_checkpoint, resolve_checkpoint
from dfdetect.engine.device import autocast, memory_format, place_model, resolve_device
from dfdetect.models import Detector, create_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One image's result: label is 'real' or 'fake'; error is set (and scores are None) when it failed."""

    path: str
    label: str | None
    p_fake: float | None
    p_real: float | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": self.label,
            "p_fake": self.p_fake,
            "p_real": self.p_real,
            "error": self.error,
        }


def load_model(checkpoint: Path) -> tuple[Detector, dict[str, Any]]:
    """Rebuild a trained detector from a run folder or checkpoint file; returns (model, metadata)."""
    path = resolve_checkpoint(checkpoint)
    state, metadata, _ = load_checkpoint(path)
    config = metadata.get("config", {})
    preprocessing = Preprocessing.from_dict(metadata["preprocessing"])
    model = create_model(metadata["model"], dropout=float(config.get("dropout", 0.0)), pretrained=False)
    model.preprocessing = preprocessing
    model.load_state_dict(state)
    model.eval()
    return model, metadata


class Predictor:
    """Scores images with a trained detector; thread-safe for concurrent calls (inference only)."""

    def __init__(
        self,
        model: Detector,
        metadata: dict[str, Any] | None = None,
        device: str = "auto",
        threshold: float = 0.5,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model
        place_model(model, self.device).eval()
        self.metadata = metadata or {}
        self.preprocessing = model.preprocessing
        self.transform = build_eval_transform(self.preprocessing)
        self.threshold = threshold

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, device: str = "auto", threshold: float = 0.5) -> Predictor:
        model, metadata = load_model(checkpoint)
        return cls(model, metadata, device=device, threshold=threshold)

    @torch.no_grad()
    def predict_tensor(self, batch: torch.Tensor) -> np.ndarray:
        """P(Real) for a batch of already preprocessed images."""
        batch = batch.to(self.device, memory_format=memory_format(self.device))
        with autocast(self.device):
            logits = self.model(batch)
        return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """P(Real) for RGB PIL images."""
        return self.predict_tensor(torch.stack([self.transform(image) for image in images]))

    def label_of(self, p_real: float) -> str:
        return "real" if p_real >= self.threshold else "fake"

    def predict_paths(
        self, paths: Sequence[Path], batch_size: int = 32, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> list[Prediction]:
        """One Prediction per path, in order; unreadable files get an error row and the rest go on."""
        results: list[Prediction | None] = [None] * len(paths)
        pending: list[tuple[int, Image.Image]] = []

        def flush() -> None:
            scores = self.predict_images([image for _, image in pending])
            for (index, _), p_real in zip(pending, scores, strict=True):
                results[index] = Prediction(str(paths[index]), self.label_of(p_real), 1 - p_real, float(p_real))
            pending.clear()

        for index, path in enumerate(paths):
            try:
                pending.append((index, load_rgb(path, max_pixels=max_pixels)))
            except (ImageLoadError, OSError) as error:
                logger.warning("cannot score %s: %s", path, error)
                results[index] = Prediction(str(path), None, None, None, str(error))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        return [result for result in results if result is not None]
