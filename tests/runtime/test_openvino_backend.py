from pathlib import Path

import numpy as np
import pytest

from dfdetect.runtime import expand_paths, load_predictor
from dfdetect.runtime.openvino_backend import cpu_has_bf16
from dfdetect.runtime.torch_backend import TorchPredictor

pytest.importorskip("openvino", reason="openvino not installed")


def test_auto_runtime_on_cpu_is_openvino_and_agrees_with_pytorch(trained_run: Path, tiny_dataset: Path) -> None:
    from dfdetect.runtime.openvino_backend import OpenVinoPredictor

    fast = load_predictor(trained_run, device="cpu")
    assert isinstance(fast, OpenVinoPredictor) and fast.runtime == "openvino" and fast.supports_explain
    assert fast.describe()["runtime"] == "openvino" and fast.describe()["precision"].startswith(fast.precision)
    reference = TorchPredictor.from_checkpoint(trained_run, device="cpu")
    paths = expand_paths([str(tiny_dataset / "Test")])
    fast_scores = np.array([p.p_real for p in fast.predict_paths(paths)])
    reference_scores = np.array([p.p_real for p in reference.predict_paths(paths)])
    tolerance = 2e-2 if fast.precision == "bf16" else 1e-4  # bf16 keeps 8 bits of mantissa
    assert np.max(np.abs(fast_scores - reference_scores)) < tolerance
    assert load_predictor(trained_run, runtime="torch", device="cpu").runtime == "torch"


def test_fp32_openvino_matches_pytorch_closely(trained_run: Path, tiny_dataset: Path) -> None:
    from dfdetect.runtime.openvino_backend import OpenVinoPredictor

    reference = TorchPredictor.from_checkpoint(trained_run, device="cpu")
    fp32 = OpenVinoPredictor(TorchPredictor.from_checkpoint(trained_run, device="cpu"), precision="f32")
    paths = expand_paths([str(tiny_dataset / "Test")])
    a = np.array([p.p_real for p in fp32.predict_paths(paths)])
    b = np.array([p.p_real for p in reference.predict_paths(paths)])
    assert np.max(np.abs(a - b)) < 1e-4


needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 units")


@pytest.fixture
def test_batch(trained_run: Path, tiny_dataset: Path) -> tuple[TorchPredictor, np.ndarray, np.ndarray]:
    """The trained model, the preprocessed Test split as one batch, and its fp32 OpenVINO logits."""
    from dfdetect.data.images import load_rgb
    from dfdetect.runtime.openvino_backend import OpenVinoPredictor

    base = TorchPredictor.from_checkpoint(trained_run, device="cpu")
    batch = base.preprocess([load_rgb(path) for path in expand_paths([str(tiny_dataset / "Test")])]).numpy()
    return base, batch, OpenVinoPredictor(base, precision="f32").logits(batch)


@needs_bf16
def test_bf16_scores_near_the_threshold_are_redone_in_fp32(
    trained_run: Path, test_batch: tuple[TorchPredictor, np.ndarray, np.ndarray]
) -> None:
    from dfdetect.runtime.base import threshold_logit
    from dfdetect.runtime.openvino_backend import OpenVinoPredictor

    base, batch, fp32 = test_batch
    bf16 = OpenVinoPredictor(base, precision="bf16", recheck_margin=0.0).logits(batch)
    assert np.max(np.abs(fp32 - bf16)) > 1e-5  # bf16 really differs, or this test would prove nothing

    threshold = float(1 / (1 + np.exp(-np.median(fp32))))  # a threshold inside the cloud of scores
    distance = np.abs(bf16 - threshold_logit(threshold))
    margin = float(np.median(distance))
    mixed = OpenVinoPredictor(
        TorchPredictor.from_checkpoint(trained_run, device="cpu", threshold=threshold),
        precision="bf16",
        recheck_margin=margin,
    )
    assert mixed.exact is not None
    logits = mixed.logits(batch)
    near = distance < margin
    assert 0 < near.sum() < len(batch)
    np.testing.assert_allclose(logits[near], fp32[near], atol=1e-5)  # redone in fp32
    np.testing.assert_allclose(logits[~near], bf16[~near], atol=1e-6)  # far ones keep bf16
    assert threshold_logit(0.5) == 0.0 and threshold_logit(0.0) == -np.inf and threshold_logit(1.0) == np.inf


@needs_bf16
def test_when_most_scores_crowd_the_threshold_fp32_runs_alone(
    test_batch: tuple[TorchPredictor, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dfdetect.runtime import openvino_backend
    from dfdetect.runtime.openvino_backend import FP32_FIRST_ABOVE, OpenVinoPredictor

    real_infer = openvino_backend.infer
    base, batch, fp32 = test_batch
    crowded = OpenVinoPredictor(base, precision="bf16", recheck_margin=1e6)  # every score counts as near
    shares = []
    for _ in range(10):
        np.testing.assert_allclose(crowded.logits(batch), fp32, atol=1e-5)  # always the fp32 scores
        shares.append(crowded.near_share)
    assert shares == sorted(shares) and shares[-1] > FP32_FIRST_ABOVE  # it learned to run fp32 first
    used = []
    monkeypatch.setattr(openvino_backend, "infer", lambda compiled, b: used.append(compiled) or real_infer(compiled, b))
    crowded.logits(batch)
    assert used == [crowded.exact]  # one fp32 pass, no bf16 pass
    spread = OpenVinoPredictor(base, precision="bf16", recheck_margin=1e-9)  # nothing is near
    spread.logits(batch)
    assert spread.near_share == 0.0


def test_a_second_load_reads_the_kept_export_and_scores_the_same(
    trained_run: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DFDETECT_CACHE_DIR", str(tmp_path))
    paths = expand_paths([str(tiny_dataset / "Test")])[:8]
    first = load_predictor(trained_run, runtime="openvino")
    assert len(list(tmp_path.glob("*.onnx"))) == 1 and list((tmp_path / "openvino").glob("*.blob"))
    second = load_predictor(trained_run, runtime="openvino")  # from the kept export and compiled model
    [blob] = (tmp_path / "openvino").glob("*.blob")
    blob.chmod(0o600)
    blob.write_bytes(blob.read_bytes()[:1000])  # cut short in place, as by a process killed while writing it
    third = load_predictor(trained_run, runtime="openvino")  # compiled again; `second` must not have it mapped
    scores = [[row.p_real for row in predictor.predict_paths(paths)] for predictor in (first, second, third)]
    assert scores[0] == scores[1] == scores[2]
