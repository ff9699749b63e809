"""CPU inference, side by side: PyTorch eager fp32 against the other CPU paths, same model, same inputs.

    python bench/infer_cpu.py                                       # own_cnn and densenet121 at 224 and 256 px
    python bench/infer_cpu.py --checkpoint runs/densenet121 --data ../shared/data/dfdc-faces   # + label parity
    python bench/infer_cpu.py --models '' --checkpoint runs/a --checkpoint runs/b --data DATA  # parity only

Paths: eager fp32 (NCHW), channels_last fp32, channels_last + bf16 autocast (CPUs with bf16), ONNX Runtime
fp32, OpenVINO fp32 and OpenVINO bf16 (when `openvino` is installed). For each: images/s at batch 32 and
latency at batch 1 (medians). With --checkpoint and --data, every path scores the Test split and the table
gives the share of labels equal to eager fp32's (target >= 99.5%) and the images/s over the split; there
OpenVINO bf16 with near-threshold scores redone in fp32 runs too (dfdetect's CPU default until it changed labels
of the shipped Lite0 detectors; its speed depends on the model's scores, so it is timed on real images only).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfdetect.data.discovery import list_samples, split_folder
from dfdetect.data.images import load_rgb
from dfdetect.models import Detector, create_model
from dfdetect.runtime import preprocess_numpy
from dfdetect.runtime.export import onnx_bytes
from dfdetect.runtime.openvino_backend import RECHECK_MARGIN, OpenVinoPredictor, cpu_has_bf16
from dfdetect.runtime.torch_backend import TorchPredictor, load_model

Runner = Callable[[np.ndarray], np.ndarray]
RECHECK_PATH = "openvino bf16 + fp32 recheck"


def runners(model: Detector, size: int, recheck: dict[str, Any] | None = None) -> dict[str, Runner]:
    """Every available CPU path for one model, as numpy -> logits functions.

    recheck (the trained model's metadata, for its calibrated threshold) adds OpenVINO bf16 with fp32 near that
    threshold, whose speed depends on how many scores lie near it: it is timed on real images in `parity` only,
    never on random weights.
    """
    model = model.float().eval()
    paths: dict[str, Runner] = {}

    def torch_runner(memory_format: torch.memory_format, bf16: bool) -> Runner:
        own = create_model_like(model).to(memory_format=memory_format)

        @torch.inference_mode()
        def run(batch: np.ndarray) -> np.ndarray:
            tensor = torch.from_numpy(batch).contiguous(memory_format=memory_format)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return own(tensor).float().numpy()

        return run

    paths["eager fp32"] = torch_runner(torch.contiguous_format, False)
    paths["channels_last fp32"] = torch_runner(torch.channels_last, False)
    if "AVX512" in torch.backends.cpu.get_cpu_capability() or "AMX" in torch.backends.cpu.get_cpu_capability():
        paths["channels_last bf16"] = torch_runner(torch.channels_last, True)
    exported = onnx_bytes(model)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(exported, options, providers=["CPUExecutionProvider"])
    paths["onnxruntime fp32"] = lambda batch: session.run(None, {"images": batch})[0]
    try:
        import openvino as ov
    except ImportError:
        return paths
    core = ov.Core()
    ov_model = core.read_model(exported) if hasattr(core, "read_model") else None
    for precision in ("f32", "bf16"):
        compiled = core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
        request = compiled.create_infer_request()
        paths[f"openvino {precision.replace('f32', 'fp32')}"] = lambda batch, request=request: request.infer(
            {0: batch}
        )[0].copy()
    if recheck is not None and cpu_has_bf16():
        # bf16, with scores within RECHECK_MARGIN logit of the threshold redone in fp32 (the CPU default's fp32 is
        # the "openvino fp32" row)
        torch_predictor = TorchPredictor(create_model_like(model), recheck, device="cpu")
        rechecked = OpenVinoPredictor(torch_predictor, precision="bf16")
        paths[RECHECK_PATH] = rechecked.logits
    return paths


def create_model_like(model: Detector) -> Detector:
    """An independent copy with the same weights (each path gets its own module; ensembles included)."""
    return copy.deepcopy(model).eval()


def time_runner(run: Runner, batch: np.ndarray, repeats: int) -> float:
    run(batch)
    run(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="own_cnn,densenet121", help='"" skips the speed table')
    parser.add_argument("--sizes", default="224,256")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--checkpoint", type=Path, action="append", default=[], help="a trained run for the label-parity check (repeat)"
    )
    parser.add_argument("--data", type=Path, help="dataset whose Test split the parity check scores")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"CPU: {torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}, "
        f"torch {torch.__version__}"
    )
    names = [name for name in args.models.split(",") if name]
    if names:
        print(
            "| model | size | path | img/s @ batch 32 | x eager | latency @ batch 1 (ms) |\n|---|---|---|---|---|---|"
        )
    for name in names:
        for size in (int(s) for s in args.sizes.split(",")):
            torch.manual_seed(0)
            paths = runners(create_model(name, image_size=size), size)
            batch = rng.standard_normal((args.batch_size, 3, size, size)).astype(np.float32)
            single = batch[:1].copy()
            baseline = None
            for path, run in paths.items():
                throughput = args.batch_size / time_runner(run, batch, args.repeats)
                latency = time_runner(run, single, args.repeats * 4) * 1000
                baseline = baseline or throughput
                print(
                    f"| {name} | {size} | {path} | {throughput:.1f} | {throughput / baseline:.2f}x | {latency:.1f} |",
                    flush=True,
                )
    for checkpoint in args.checkpoint if args.data else []:
        parity(checkpoint, args.data, args.batch_size)


def parity(checkpoint: Path, data: Path, batch_size: int) -> None:
    """Share of Test labels each path gives identically to eager fp32, at the detector's own calibrated threshold
    (0.5 when it has none); `checkpoint` may also name a shipped detector."""
    model, metadata = load_model(checkpoint)
    size = model.preprocessing.input_size
    calibrated = TorchPredictor(create_model_like(model), metadata, device="cpu")  # reads the stored calibration
    threshold, target = calibrated.threshold, calibrated.logit_threshold
    samples = list_samples(split_folder(data, "Test"))
    inputs = np.stack([preprocess_numpy(load_rgb(s.path), model.preprocessing) for s in samples])
    paths = runners(model, size, recheck=metadata)
    logits_of, rates = {}, {}
    for path, run in paths.items():
        run(inputs[:batch_size])  # warm up
        start = time.perf_counter()
        logits = np.concatenate([run(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])
        rates[path] = len(inputs) / (time.perf_counter() - start)
        logits_of[path] = logits.astype(np.float64).reshape(-1)
    scores = {path: 1 / (1 + np.exp(-logits)) for path, logits in logits_of.items()}
    reference = logits_of["eager fp32"] >= target
    near = int(np.sum(np.abs(logits_of["eager fp32"] - target) < 0.04))
    print(
        f"\nLabel parity with eager fp32: {metadata['model']} from {checkpoint} at {size} px, "
        f"{len(samples)} images of {data}/Test, labels at P(Real) >= {threshold:.3f} "
        f"({near} with an eager logit within 0.04 of that threshold's)"
    )
    if "openvino bf16" in logits_of:
        redone = int(np.sum(np.abs(logits_of["openvino bf16"] - target) < RECHECK_MARGIN))
        print(f"{RECHECK_PATH}: {redone} of {len(samples)} images redone in fp32 (margin {RECHECK_MARGIN} logit)")
    print(
        "| path | same label as eager fp32 | max abs diff in P(Real) | max abs diff in logit | img/s on this split |\n"
        "|---|---|---|---|---|"
    )
    for path, values in scores.items():
        same = int(np.sum((logits_of[path] >= target) == reference))
        print(
            f"| {path} | {same}/{len(samples)} = {same / len(samples):.2%} | "
            f"{np.max(np.abs(values - scores['eager fp32'])):.2e} | "
            f"{np.max(np.abs(logits_of[path] - logits_of['eager fp32'])):.2e} | {rates[path]:.1f} |"
        )


if __name__ == "__main__":
    main()
