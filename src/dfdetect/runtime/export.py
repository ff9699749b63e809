"""Export a trained detector to ONNX (dynamic batch, fp32) with its preprocessing in the model's metadata."""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path

import onnx
import torch

from dfdetect.engine.checkpoint import atomic_write
from dfdetect.models import Detector
from dfdetect.runtime.base import METADATA_KEY
from dfdetect.runtime.torch_backend import load_model

logger = logging.getLogger(__name__)


def onnx_bytes(model: Detector, opset: int = 17) -> bytes:
    """The model as ONNX (fp32, input `images` with a dynamic batch axis, output `logits`)."""
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    size = model.preprocessing.input_size
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (torch.randn(2, 3, size, size),),
            buffer,  # type: ignore[arg-type]
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return buffer.getvalue()


def export_onnx(checkpoint: Path, out: Path, opset: int = 17) -> Path:
    """Write `out` (.onnx): input `images` (N, 3, H, W) normalised float32, output `logits` (N,) for Real."""
    model, metadata = load_model(checkpoint)
    size = model.preprocessing.input_size

    def write(temporary: Path) -> None:
        exported = onnx.load_from_string(onnx_bytes(model, opset))
        info = {
            **metadata,
            "output": "logits (N,): sigmoid(logit) = P(Real); labels 0 = Fake, 1 = Real",
            "input": f"images (N, 3, {size}, {size}) float32, RGB, normalised with preprocessing.mean/std",
        }
        entry = exported.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(info)
        onnx.checker.check_model(exported)
        onnx.save(exported, str(temporary))

    atomic_write(out, write)
    logger.info("exported %s to %s", metadata["model"], out)
    return out
