"""What every runtime shares (no torch here): path expansion, numpy preprocessing, batching with per-file errors."""

from __future__ import annotations

import glob
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dfdetect.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, load_rgb
from dfdetect.errors import DfdetectError
from dfdetect.preprocessing import Preprocessing

logger = logging.getLogger(__name__)

RESAMPLING = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class Prediction:
    """One image's result: label is 'real' or 'fake'; error is set (and the rest None) when it failed."""

    path: str
    label: str | None
    p_fake: float | None
    p_real: float | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expand_paths(arguments: Sequence[str]) -> list[Path]:
    """Files as given, folders searched recursively for images, globs expanded; order kept, duplicates dropped."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif any(char in argument for char in "*?["):
            found += sorted(Path(p) for p in glob.glob(argument, recursive=True) if Path(p).is_file())
        else:
            found.append(path)  # a missing file becomes an error row, not a crash
    return list(dict.fromkeys(found))


def preprocess_numpy(image: Image.Image, preprocessing: Preprocessing) -> np.ndarray:
    """RGB PIL image -> normalised float32 (3, H, W) array, with Pillow only (the ONNX path has no torch)."""
    size = preprocessing.input_size
    resized = image.resize((size, size), RESAMPLING.get(preprocessing.interpolation, Image.Resampling.BILINEAR))
    pixels = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
    mean, std = np.asarray(preprocessing.mean, dtype=np.float32), np.asarray(preprocessing.std, dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


class BasePredictor(ABC):
    """Scores images with P(Real); subclasses say how (PyTorch, ONNX Runtime)."""

    preprocessing: Preprocessing
    metadata: dict[str, Any]
    threshold: float = 0.5
    runtime: str = ""
    supports_explain: bool = False

    @abstractmethod
    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """P(Real) for RGB PIL images."""

    def label_of(self, p_real: float) -> str:
        return "real" if p_real >= self.threshold else "fake"

    def prediction(self, name: str, p_real: float) -> Prediction:
        return Prediction(name, self.label_of(p_real), float(1 - p_real), float(p_real))

    def predict_paths(
        self,
        paths: Sequence[Path],
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        prepare: Callable[[Image.Image, str], Image.Image] | None = None,
    ) -> list[Prediction]:
        """One Prediction per path, in order; a file that fails gets an error row and the rest go on.

        `prepare` may transform each decoded image first (face cropping); it raises DfdetectError to reject one.
        """
        results: list[Prediction | None] = [None] * len(paths)
        pending: list[tuple[int, Image.Image]] = []

        def flush() -> None:
            scores = self.predict_images([image for _, image in pending])
            for (index, _), p_real in zip(pending, scores, strict=True):
                results[index] = self.prediction(str(paths[index]), float(p_real))
            pending.clear()

        for index, path in enumerate(paths):
            try:
                image = load_rgb(path, max_pixels=max_pixels)
                pending.append((index, prepare(image, str(path)) if prepare else image))
            except FileNotFoundError:
                results[index] = Prediction(str(path), None, None, None, f"{path}: no such file")
            except (DfdetectError, OSError) as error:
                logger.warning("cannot score %s: %s", path, error)
                results[index] = Prediction(str(path), None, None, None, str(error))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        return [result for result in results if result is not None]

    def describe(self) -> dict[str, Any]:
        """Name, parameters, preprocessing and metrics, for people and for GET /v1/model."""
        return {
            "model": self.metadata.get("model"),
            "runtime": self.runtime,
            "parameters": self.metadata.get("parameters"),
            "preprocessing": self.preprocessing.to_dict(),
            "threshold": self.threshold,
            "labels": {"0": "Fake", "1": "Real"},
            "validation_metrics": self.metadata.get("metrics"),
            "test_metrics": self.metadata.get("test_metrics"),
            "epoch": self.metadata.get("epoch"),
        }


def load_predictor(model: Path, runtime: str = "auto", device: str = "auto", threshold: float = 0.5) -> BasePredictor:
    """A run folder or checkpoint, or an exported .onnx file, on the fastest path that keeps the labels.

    runtime: torch, onnx (ONNX Runtime, never imports torch), openvino (CPU), or auto: ONNX Runtime for .onnx
    files; for checkpoints OpenVINO when scoring on the CPU and it is installed (the fastest CPU path that passed
    the label-parity check in bench/infer_cpu.py), else PyTorch.
    """
    if runtime == "onnx" or model.suffix == ".onnx":
        from dfdetect.onnx_runtime import OnnxPredictor

        return OnnxPredictor(model, threshold=threshold)
    from dfdetect.inference import Predictor

    predictor = Predictor.from_checkpoint(model, device=device, threshold=threshold)
    if runtime == "openvino" or (runtime == "auto" and predictor.device.type == "cpu"):
        from dfdetect.openvino_runtime import OpenVinoPredictor, openvino_available

        if openvino_available():
            return OpenVinoPredictor(predictor)
        if runtime == "openvino":
            from dfdetect.errors import ConfigError

            raise ConfigError("--runtime openvino needs the `openvino` package: pip install openvino")
    return predictor
