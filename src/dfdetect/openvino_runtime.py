"""The fastest CPU path measured (bench/infer_cpu.py): OpenVINO, in bf16 where the CPU has bf16 units.

bf16 moved scores by up to 0.028 in logit on DFDC Test, so an image whose bf16 logit lies within `recheck_margin` of
the threshold's is scored again in fp32 and keeps the fp32 score: labels then match fp32 even for a model whose
scores crowd the threshold, and the cost is one fp32 pass over those images alone (docs/results.md, section 5).
The PyTorch model stays loaded beside it for Grad-CAM and for anything else that needs gradients.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from dfdetect.export import onnx_bytes
from dfdetect.inference import Predictor

logger = logging.getLogger(__name__)

RECHECK_MARGIN = 0.05
"""Logit distance from the threshold inside which a bf16 score is redone in fp32: about twice bf16's largest error
measured on DFDC Test (0.028 in logit, i.e. 0.0064 in P(Real), densenet121 at 224 px; docs/results.md)."""


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def threshold_logit(threshold: float) -> float:
    """The logit whose sigmoid is `threshold` (+-inf at 1 and 0)."""
    if threshold <= 0.0:
        return -math.inf
    if threshold >= 1.0:
        return math.inf
    return math.log(threshold / (1.0 - threshold))


class OpenVinoPredictor(Predictor):
    """A PyTorch Predictor whose scoring runs through OpenVINO on the CPU (bf16 when the CPU supports it)."""

    runtime = "openvino"

    def __init__(self, predictor: Predictor, precision: str = "auto", recheck_margin: float = RECHECK_MARGIN) -> None:
        import openvino as ov

        super().__init__(predictor.model, predictor.metadata, device="cpu", threshold=predictor.threshold)
        core = ov.Core()
        if precision == "auto":
            precision = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
        self.precision = precision
        self.recheck_margin = recheck_margin
        network = core.read_model(onnx_bytes(predictor.model))
        self.compiled = core.compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": precision})
        self.exact: Any = None
        if precision != "f32" and recheck_margin > 0:
            self.exact = core.compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        logger.info(
            "scoring with OpenVINO on the CPU (%s%s)",
            precision,
            f", fp32 within {recheck_margin} logit of the threshold" if self.exact is not None else "",
        )

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a preprocessed float32 (N, 3, H, W) batch; near-threshold ones come from the fp32 model."""
        # A request per call: OpenVINO infer requests are not shared between threads.
        logits = np.array(self.compiled.create_infer_request().infer({0: batch})[0], dtype=np.float64).reshape(-1)
        if self.exact is not None:
            near = np.abs(logits - threshold_logit(self.threshold)) < self.recheck_margin
            if near.any():
                exact = self.exact.create_infer_request().infer({0: np.ascontiguousarray(batch[near])})[0]
                logits[near] = np.asarray(exact, dtype=np.float64).reshape(-1)
        return logits

    def describe(self) -> dict[str, Any]:
        precision = self.precision
        if self.exact is not None:
            precision += f", fp32 within {self.recheck_margin} logit of the threshold"
        return {**super().describe(), "precision": precision}

    def predict_tensor(self, batch: torch.Tensor) -> np.ndarray:
        logits = self.logits(batch.float().contiguous().numpy())
        return 1.0 / (1.0 + np.exp(-logits))
