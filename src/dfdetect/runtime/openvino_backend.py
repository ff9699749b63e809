"""The fastest CPU path measured (bench/infer_cpu.py): OpenVINO; fp32 by default, bf16 on request.

With bf16, which moved DenseNet121's scores by up to 0.040 in logit on DFDC Test (but EfficientNet-Lite0's by up
to 0.93: see OpenVinoPredictor), an image whose bf16 logit lies within `recheck_margin` of the threshold's is
scored again in fp32 and keeps the fp32 score, at the cost of one fp32 pass over those images alone; when most
recent images needed it, fp32 runs first and alone, so the worst case is fp32's speed (docs/results.md, section 5).
The PyTorch model stays loaded beside it for Grad-CAM and for anything else that needs gradients.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from dfdetect.runtime.export import cached_onnx_bytes, openvino_cache
from dfdetect.runtime.torch_backend import TorchPredictor

logger = logging.getLogger(__name__)

RECHECK_MARGIN = 0.08
"""Logit distance from the threshold inside which a bf16 score is redone in fp32: twice bf16's largest error
measured on DFDC Test (0.040 in logit, i.e. 0.0057 in P(Real), over three densenet121; docs/results.md)."""


FP32_FIRST_ABOVE = 0.4
"""When more than this share of recent images needed the fp32 pass, fp32 runs first and alone. bf16 runs at about
twice fp32's speed, and the fp32 pass over a batch's few near images is less efficient than over the whole batch:
on DFDC Test at 224 px, bf16 + fp32 for 49% of the images ran at 26.9 img/s, fp32 alone at 29.1."""

NEAR_SHARE_SMOOTHING = 0.1
"""Weight of each call in the running share of near-threshold images."""


def infer(compiled: Any, batch: np.ndarray) -> np.ndarray:
    """One OpenVINO inference; a new request per call, as infer requests are not shared between threads."""
    return np.array(compiled.create_infer_request().infer({0: batch})[0], dtype=np.float64).reshape(-1)


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_has_bf16() -> bool:
    """Whether OpenVINO finds bf16 units on this CPU (AVX512_BF16 or AMX)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoPredictor(TorchPredictor):
    """A PyTorch TorchPredictor whose scoring runs through OpenVINO on the CPU: fp32 by default (scores equal to
    PyTorch's within 1e-4); precision="bf16" (or "auto": bf16 where the CPU has bf16 units) asks for speed.

    bf16 is not the default: on the shipped EfficientNet-Lite0 detectors at 128 px it moved logits by up to 0.93
    on 64 DFDC Test fakes (fp32: 4e-5), and 3 of the 798 Test labels of dfdc-lite0-ens 1.0.0 changed despite the fp32
    recheck near the threshold, whose margin was measured on DenseNet121 (docs/results.md, section 5)."""

    runtime = "openvino"

    def __init__(
        self, predictor: TorchPredictor, precision: str = "f32", recheck_margin: float = RECHECK_MARGIN
    ) -> None:
        import openvino as ov

        super().__init__(predictor.model, predictor.metadata, device="cpu", threshold=predictor.threshold)
        self.threshold_policy = predictor.threshold_policy
        core = ov.Core()
        if (compiled_cache := openvino_cache()) is not None:
            # Read kept compiled models into memory, never map them: OpenVINO rewrites a broken one in place, and a
            # process that had it mapped would die of SIGBUS (tested).
            core.set_property({"CACHE_DIR": str(compiled_cache), "ENABLE_MMAP": False})
        if precision == "auto":
            precision = "bf16" if cpu_has_bf16() else "f32"
        self.precision = precision
        self.recheck_margin = recheck_margin
        network = core.read_model(cached_onnx_bytes(predictor.model))
        self.compiled = core.compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": precision})
        self.exact: Any = None
        self.near_share = 0.0  # running share of images whose score lay within recheck_margin of the threshold
        if precision != "f32" and recheck_margin > 0:
            self.exact = core.compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        logger.info("scoring with OpenVINO on the CPU (%s)", self.precision_label)

    @property
    def precision_label(self) -> str:
        """The precision in words, for logs and GET /v1/model."""
        if self.exact is None:
            return self.precision
        return f"{self.precision}, fp32 within {self.recheck_margin} logit of the threshold"

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a preprocessed float32 (N, 3, H, W) batch; near-threshold ones come from the fp32 model."""
        if self.exact is None:
            return infer(self.compiled, batch)
        target = self.logit_threshold
        if self.near_share > FP32_FIRST_ABOVE:
            logits = infer(self.exact, batch)  # most scores crowd the threshold: a bf16 pass first costs more
            near = np.abs(logits - target) < self.recheck_margin
        else:
            logits = infer(self.compiled, batch)
            near = np.abs(logits - target) < self.recheck_margin
            if near.any():
                logits[near] = infer(self.exact, np.ascontiguousarray(batch[near]))
        # Only speed depends on this estimate (never a label), so unsynchronised updates from threads are harmless.
        self.near_share += NEAR_SHARE_SMOOTHING * (float(near.mean()) - self.near_share)
        return logits

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "precision": self.precision_label}

    def predict_tensor(self, batch: torch.Tensor) -> np.ndarray:
        logits = self.logits(batch.float().contiguous().numpy())
        return 1.0 / (1.0 + np.exp(-logits))
