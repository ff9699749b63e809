"""The one place that knows every scoring backend; each is imported only when chosen (ONNX needs no torch)."""

from __future__ import annotations

from pathlib import Path

from dfdetect.calibration import ThresholdChoice
from dfdetect.errors import ConfigError
from dfdetect.quality import check_small_caution
from dfdetect.runtime.base import BasePredictor

RUNTIMES = ("auto", "torch", "onnx", "openvino")


def load_predictor(
    model: Path,
    runtime: str = "auto",
    device: str = "auto",
    threshold: ThresholdChoice = None,
    noise_caution: float | None = None,
    small_caution: int | None = None,
) -> BasePredictor:
    """A run folder or checkpoint, or an exported .onnx file, on the fastest path that keeps the labels.

    threshold: None takes the one `dfdetect calibrate` stored with the model (else 0.5); a number is used as it is,
    a policy's name (e.g. "fpr:0.01") takes the threshold stored for it.

    noise_caution: grey levels of estimated noise above which a score gets a caution; None keeps
    dfdetect.quality.NOISE_CAUTION, 0 turns the caution off.

    small_caution: shorter side (pixels) below which a score gets a caution; None keeps
    dfdetect.quality.SMALL_CAUTION, 0 turns the caution off.

    runtime: torch, onnx (ONNX Runtime, never imports torch), openvino (CPU), or auto: ONNX Runtime for .onnx
    files; for checkpoints OpenVINO when scoring on the CPU and it is installed (the fastest CPU path that passed
    the label-parity check in bench/infer_cpu.py), else PyTorch.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if noise_caution is not None and not noise_caution >= 0:
        raise ConfigError(f"noise caution {noise_caution:g}: give grey levels >= 0 (0 turns the caution off)")
    check_small_caution(small_caution)
    predictor = _backend(model, runtime, device, threshold)
    if noise_caution is not None:
        predictor.noise_caution = noise_caution
    if small_caution is not None:
        predictor.small_caution = small_caution
    return predictor


def _backend(model: Path, runtime: str, device: str, threshold: ThresholdChoice) -> BasePredictor:
    """The predictor of load_predictor's runtime rule (runtime already checked)."""
    if runtime == "onnx" or model.suffix == ".onnx":
        from dfdetect.runtime.onnx_backend import OnnxPredictor

        return OnnxPredictor(model, threshold=threshold)
    from dfdetect.runtime.torch_backend import TorchPredictor

    predictor = TorchPredictor.from_checkpoint(model, device=device, threshold=threshold)
    if runtime == "openvino" or (runtime == "auto" and predictor.device.type == "cpu"):
        from dfdetect.runtime.openvino_backend import OpenVinoPredictor, openvino_available

        if openvino_available():
            return OpenVinoPredictor(predictor)
        if runtime == "openvino":
            raise ConfigError("--runtime openvino needs the `openvino` package: pip install openvino")
    return predictor
