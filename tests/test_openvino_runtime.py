from pathlib import Path

import numpy as np
import pytest

from dfdetect.inference import Predictor
from dfdetect.prediction import expand_paths, load_predictor

pytest.importorskip("openvino", reason="openvino not installed")


def test_auto_runtime_on_cpu_is_openvino_and_agrees_with_pytorch(trained_run: Path, tiny_dataset: Path) -> None:
    from dfdetect.openvino_runtime import OpenVinoPredictor

    fast = load_predictor(trained_run, device="cpu")
    assert isinstance(fast, OpenVinoPredictor) and fast.runtime == "openvino" and fast.supports_explain
    reference = Predictor.from_checkpoint(trained_run, device="cpu")
    paths = expand_paths([str(tiny_dataset / "Test")])
    fast_scores = np.array([p.p_real for p in fast.predict_paths(paths)])
    reference_scores = np.array([p.p_real for p in reference.predict_paths(paths)])
    tolerance = 2e-2 if fast.precision == "bf16" else 1e-4  # bf16 keeps 8 bits of mantissa
    assert np.max(np.abs(fast_scores - reference_scores)) < tolerance
    assert load_predictor(trained_run, runtime="torch", device="cpu").runtime == "torch"


def test_fp32_openvino_matches_pytorch_closely(trained_run: Path, tiny_dataset: Path) -> None:
    from dfdetect.openvino_runtime import OpenVinoPredictor

    reference = Predictor.from_checkpoint(trained_run, device="cpu")
    fp32 = OpenVinoPredictor(Predictor.from_checkpoint(trained_run, device="cpu"), precision="f32")
    paths = expand_paths([str(tiny_dataset / "Test")])
    a = np.array([p.p_real for p in fp32.predict_paths(paths)])
    b = np.array([p.p_real for p in reference.predict_paths(paths)])
    assert np.max(np.abs(a - b)) < 1e-4
