"""The fastest CPU path measured (bench/infer_cpu.py): OpenVINO, in bf16 where the CPU has bf16 units.

On the development machine's AVX-512 CPU it scored densenet121 at 3.8x (224 px) and 3.1x (256 px) the images/s
of PyTorch eager fp32, with the same label as fp32 on 99.87% of the DFDC Test split (docs/results.md).
The PyTorch model stays loaded beside it for Grad-CAM and for anything else that needs gradients.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from dfdetect.export import onnx_bytes
from dfdetect.inference import Predictor

logger = logging.getLogger(__name__)


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoPredictor(Predictor):
    """A PyTorch Predictor whose scoring runs through OpenVINO on the CPU (bf16 when the CPU supports it)."""

    runtime = "openvino"

    def __init__(self, predictor: Predictor, precision: str = "auto") -> None:
        import openvino as ov

        super().__init__(predictor.model, predictor.metadata, device="cpu", threshold=predictor.threshold)
        core = ov.Core()
        if precision == "auto":
            precision = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
        self.precision = precision
        self.compiled = core.compile_model(
            core.read_model(onnx_bytes(predictor.model)), "CPU", {"INFERENCE_PRECISION_HINT": precision}
        )
        logger.info("scoring with OpenVINO on the CPU (%s)", precision)

    def predict_tensor(self, batch: torch.Tensor) -> np.ndarray:
        # A request per call: OpenVINO infer requests are not shared between threads.
        logits = self.compiled.create_infer_request().infer({0: batch.float().contiguous().numpy()})[0]
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
