"""Scoring an exported model with ONNX Runtime alone: no torch is imported on this path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dfdetect.calibration import ThresholdChoice
from dfdetect.errors import CheckpointError
from dfdetect.preprocessing import Preprocessing
from dfdetect.runtime.base import METADATA_KEY, BasePredictor, preprocess_numpy


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    """The dfdetect metadata (model, preprocessing, metrics) stored in an exported model."""
    import onnxruntime as ort

    if not path.is_file():
        raise CheckpointError(f"{path}: no such ONNX model")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        raise CheckpointError(f"{path}: not a loadable ONNX model ({error.__class__.__name__})") from None
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise CheckpointError(f"{path}: an ONNX model without dfdetect metadata; export it with `dfdetect export`")
    metadata: dict[str, Any] = json.loads(custom[METADATA_KEY])
    return metadata


class OnnxPredictor(BasePredictor):
    """P(Real) from an ONNX model exported by `dfdetect export`, preprocessing with Pillow and NumPy."""

    runtime = "onnx"

    def __init__(self, path: Path, threshold: ThresholdChoice = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.metadata = read_onnx_metadata(path)
        self.preprocessing = Preprocessing.from_dict(self.metadata["preprocessing"])
        self.use_stored_calibration(threshold)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict_array(self, batch: np.ndarray) -> np.ndarray:
        """P(Real) for a preprocessed float32 batch (N, 3, H, W)."""
        logits = self.session.run(None, {self.input_name: batch.astype(np.float32, copy=False)})[0]
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    def score_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.predict_array(np.stack([preprocess_numpy(image, self.preprocessing) for image in images]))
