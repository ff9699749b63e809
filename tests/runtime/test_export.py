import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dfdetect.cli import main
from dfdetect.errors import CheckpointError
from dfdetect.runtime.export import export_onnx
from dfdetect.runtime.onnx_backend import OnnxPredictor, read_onnx_metadata
from dfdetect.runtime.torch_backend import load_model


@pytest.fixture(scope="module")
def onnx_model(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(trained_run, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_onnx_runtime_matches_pytorch_within_1e4(trained_run: Path, onnx_model: Path) -> None:
    model, _ = load_model(trained_run)
    predictor = OnnxPredictor(onnx_model)
    for batch in (1, 5):  # the batch axis is dynamic
        inputs = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(inputs).numpy()
        logits = predictor.session.run(None, {"images": inputs.numpy()})[0]
        assert logits.shape == (batch,)
        assert np.max(np.abs(logits - expected)) <= 1e-4


def test_metadata_travels_in_the_onnx_file(onnx_model: Path) -> None:
    metadata = read_onnx_metadata(onnx_model)
    assert metadata["model"] == "own_cnn" and metadata["preprocessing"]["input_size"] == 32
    assert metadata["class_map"] == {"0": "Fake", "1": "Real"}


@pytest.mark.parametrize("framing", [["--no-crop-face"], ["--face-detector", "haar"], []])
def test_predict_with_onnx_runtime_never_imports_torch(onnx_model: Path, tiny_dataset: Path, framing: list) -> None:
    script = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "from dfdetect.cli import main\n"
        f"raise SystemExit(main(['predict', '--runtime', 'onnx', '--model', {str(onnx_model)!r}, "
        f"{str(tiny_dataset / 'Test')!r}, '--format', 'csv', *{framing!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    if not framing:  # framing auto finds faces with MTCNN, a PyTorch network: the error says what to do
        assert result.returncode != 0 and "--face-detector haar" in result.stderr, result.stderr[-2000:]
        return
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 25 and lines[0].startswith("path,label")


def test_onnx_and_torch_predictors_agree_on_images(trained_run: Path, onnx_model: Path, tiny_dataset: Path) -> None:
    from dfdetect.runtime import expand_paths
    from dfdetect.runtime.torch_backend import TorchPredictor

    paths = expand_paths([str(tiny_dataset / "Test")])
    torch_scores = [p.p_real for p in TorchPredictor.from_checkpoint(trained_run, device="cpu").predict_paths(paths)]
    onnx_scores = [p.p_real for p in OnnxPredictor(onnx_model).predict_paths(paths)]
    # Same images at their native size: only float rounding separates the two runtimes.
    assert np.max(np.abs(np.array(torch_scores) - np.array(onnx_scores))) < 1e-4


def test_export_command_and_bad_files(trained_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.onnx"
    assert main(["export", "--model", str(trained_run), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(CheckpointError, match="junk.onnx"):
        OnnxPredictor(junk)
    assert main(["predict", "--model", str(junk), str(tmp_path)]) == 2
