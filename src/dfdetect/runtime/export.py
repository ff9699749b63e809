"""Export a trained detector to ONNX (dynamic batch, fp32) with its preprocessing in the model's metadata, and
keep the exports the OpenVINO runtime makes between runs (`cached_onnx_bytes`)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from importlib import metadata as package_metadata
from pathlib import Path

import onnx
import torch
from google.protobuf.message import DecodeError

from dfdetect.conventions import VERSION
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


CACHE_ENV = "DFDETECT_CACHE_DIR"
"""Where exports are kept between runs; set but empty: nowhere (every run exports again)."""

CACHE_KEEP = 8
"""Exports kept: the least recently used beyond this many are deleted."""


def cache_folder() -> Path | None:
    """$DFDETECT_CACHE_DIR (set but empty: None, no caching), else $XDG_CACHE_HOME/dfdetect, else
    ~/.cache/dfdetect."""
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV]).expanduser() if os.environ[CACHE_ENV] else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "dfdetect"


SETTING_TYPES = (bool, int, float, str, tuple, list, type(None))
"""Plain attributes of a module that can shape its forward pass: an ensemble's weights and test-time flips, a
router's noise limit and score mapping, a layer's stride."""


def model_key(model: Detector, opset: int = 17) -> str:
    """A digest of everything an export depends on: the versions of dfdetect, torch and timm, dfdetect's model
    code (an editable install changes it without a new version), the opset, the input size, each module's class and
    plain settings (`SETTING_TYPES`), and every weight."""
    digest = hashlib.sha256()
    versions = [VERSION, torch.__version__, package_metadata.version("timm"), str(opset)]
    digest.update(" ".join([*versions, str(model.preprocessing.input_size)]).encode())
    for source in sorted(Path(__file__).parents[1].joinpath("models").glob("*.py")):
        digest.update(source.read_bytes())
    for name, module in model.named_modules():
        settings = {
            key: value
            for key, value in vars(module).items()
            if isinstance(value, SETTING_TYPES) and not key.startswith("_") and key != "training"  # exported in eval
        }
        digest.update(f"{name} {type(module).__qualname__} {sorted(settings.items())!r}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def cached_onnx_bytes(model: Detector, opset: int = 17, folder: Path | None = None, keep: int = CACHE_KEEP) -> bytes:
    """`onnx_bytes(model)`, kept in `folder` (default: `cache_folder()`; None: not kept) under `model_key`, so the
    next run with the same weights and code skips the export (5 s of a 224 px pair's cold start on 2 CPU cores). A
    kept file that is not a valid ONNX model is exported again; a folder that cannot be written is logged and
    skipped. OpenVINO keeps its compiled models beside them (`openvino_cache`)."""
    folder = folder if folder is not None else cache_folder()
    if folder is None:
        return onnx_bytes(model, opset)
    path = folder / f"{model_key(model, opset)}.onnx"
    try:
        data = path.read_bytes()
        onnx.checker.check_model(onnx.load_from_string(data))
        os.utime(path)  # most recently used
    except OSError:
        pass  # not kept yet, pruned by another process a moment ago, or no folder to keep it in
    except (onnx.checker.ValidationError, DecodeError, ValueError) as error:
        logger.warning("%s: a broken cached export, made again (%s)", path, error)
    else:
        logger.debug("export read from the cache %s", path)
        return data
    data = onnx_bytes(model, opset)
    try:
        atomic_write(path, lambda temporary: temporary.write_bytes(data))
    except OSError as error:
        logger.warning("cannot keep the export in %s (%s): set %s to a writable folder", folder, error, CACHE_ENV)
        return data
    prune(folder, "*.onnx", keep)
    return data


def prune(folder: Path, pattern: str, keep: int) -> None:
    """Delete the files of `folder` matching `pattern` beyond the `keep` most recently used (by modification time)."""
    kept = sorted(folder.glob(pattern), key=lambda file: file.stat().st_mtime, reverse=True)
    for stale in kept[keep:]:
        stale.unlink(missing_ok=True)


def writable_folder(folder: Path) -> bool:
    """Whether `folder` exists or could be made, and can be written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def openvino_cache(keep: int = CACHE_KEEP) -> Path | None:
    """The folder for OpenVINO's CACHE_DIR (compiled models: reading and compiling a 224 px pair 2 s -> 0.6 s), inside
    `cache_folder()`, its blobs pruned to the `keep` per precision most recently used; None when there is no
    writable cache folder."""
    folder = cache_folder()
    if folder is None or not writable_folder(folder / "openvino"):
        return None
    prune(folder / "openvino", "*.blob", 2 * keep)
    return folder / "openvino"


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
