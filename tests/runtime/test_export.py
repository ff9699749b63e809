import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dfdetect.cli import main
from dfdetect.errors import CheckpointError
from dfdetect.models.ensemble import Ensemble
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


def test_exports_are_kept_between_runs_by_weights_and_code(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from dfdetect.runtime import export

    model, _ = load_model(trained_run / "checkpoints" / "best.safetensors")
    folder = tmp_path / "cache"
    made = export.cached_onnx_bytes(model, folder=folder)
    [kept] = folder.glob("*.onnx")
    assert kept.name == f"{export.model_key(model)}.onnx" and kept.read_bytes() == made

    def no_export(*args: object) -> bytes:
        raise AssertionError("exported again")

    monkeypatch.setattr(export, "onnx_bytes", no_export)
    assert export.cached_onnx_bytes(model, folder=folder) == made  # read back, not exported
    weight = next(model.parameters())
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.add_(1e-3)  # other weights: another key
        assert export.model_key(model) != kept.stem
        weight.copy_(saved)
    assert export.model_key(model) == kept.stem
    pairs = [Ensemble([model, model]), Ensemble([model, model], weights=[3, 1]), Ensemble([model, model], "hflip")]
    assert len({export.model_key(pair) for pair in pairs}) == 3  # the same weights, weighed or flipped otherwise
    model.train()
    assert export.model_key(model) == kept.stem  # exported in eval mode whatever the mode
    model.eval()
    monkeypatch.undo()
    kept.write_bytes(made[:1000])  # a broken file is made again, with a warning
    assert export.cached_onnx_bytes(model, folder=folder) == made and kept.read_bytes() == made
    assert "a broken cached export, made again" in caplog.text
    for index in range(3):  # a new export keeps `keep` of them, the most recently used
        (folder / f"old{index}.onnx").write_bytes(b"")
        os.utime(folder / f"old{index}.onnx", (index, index))
    kept.unlink()
    export.cached_onnx_bytes(model, folder=folder, keep=2)
    assert sorted(path.name for path in folder.glob("*.onnx")) == sorted([kept.name, "old2.onnx"])


def test_the_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dfdetect.runtime.export import cache_folder, openvino_cache

    monkeypatch.setenv("DFDETECT_CACHE_DIR", str(tmp_path / "here"))
    assert cache_folder() == tmp_path / "here" and openvino_cache() == tmp_path / "here" / "openvino"
    monkeypatch.setenv("DFDETECT_CACHE_DIR", "")  # set but empty: nothing kept
    assert cache_folder() is None and openvino_cache() is None
    monkeypatch.delenv("DFDETECT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "dfdetect"
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DFDETECT_CACHE_DIR", str(blocked))
    assert openvino_cache() is None  # cannot be made: OpenVINO compiles without a cache


def test_a_cache_that_cannot_be_written_still_exports(
    trained_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dfdetect.runtime.export import cached_onnx_bytes, onnx_bytes

    model, _ = load_model(trained_run / "checkpoints" / "best.safetensors")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert cached_onnx_bytes(model, folder=blocked / "cache") == onnx_bytes(model)
    assert "cannot keep the export in" in caplog.text and "DFDETECT_CACHE_DIR" in caplog.text
