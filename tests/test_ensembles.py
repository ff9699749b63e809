"""`dfdetect ensemble` and `dfdetect route`: combined checkpoints load, score, calibrate, export and explain like
one network."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dfdetect.calibration import threshold_logit
from dfdetect.cli import main
from dfdetect.engine.checkpoint import initial_weights
from dfdetect.engine.trainer import fit
from dfdetect.ensembles import average_networks, combine
from dfdetect.errors import CheckpointError, ConfigError
from dfdetect.evaluation import calibrate_checkpoint
from dfdetect.models.factory import create_model
from dfdetect.pretrained.release import architecture_of
from dfdetect.runtime.base import expand_paths
from dfdetect.runtime.export import export_onnx
from dfdetect.runtime.onnx_backend import OnnxPredictor
from dfdetect.runtime.torch_backend import TorchPredictor, load_model
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def second_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("second") / "own_cnn"
    fit(tiny_config(tiny_dataset, run, seed=7))
    return run


@pytest.fixture(scope="module")
def pair(trained_run: Path, second_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ensemble") / "pair"
    assert (
        main(["ensemble", "--model", str(trained_run), "--model", str(second_run), "--tta", "hflip", "--out", str(out)])
        == 0
    )
    return out


def test_ensemble_scores_are_the_mean_of_the_members_logits(
    pair: Path, trained_run: Path, second_run: Path, tiny_dataset: Path
) -> None:
    paths = expand_paths([str(tiny_dataset / "Test")])[:6]
    members = [TorchPredictor.from_checkpoint(run, device="cpu") for run in (trained_run, second_run)]
    ensemble = TorchPredictor.from_checkpoint(pair, device="cpu")
    batch = ensemble.preprocess([Image.open(path).convert("RGB") for path in paths])
    with torch.no_grad():
        logits = [m.model(view) for m in members for view in (batch, batch.flip(3))]
    expected = torch.sigmoid(torch.stack(logits).mean(0)).numpy()
    got = np.array([row.p_real for row in ensemble.predict_paths(paths)])
    assert np.allclose(got, expected, atol=1e-5)
    assert ensemble.metadata["model"] == "ensemble" and ensemble.metadata["ensemble"]["tta"] == "hflip"
    assert [m["source"] for m in ensemble.metadata["ensemble"]["members"]] == [str(trained_run), str(second_run)]


def test_an_ensemble_calibrates_and_exports_to_onnx(pair: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    calibration, _ = calibrate_checkpoint(pair, tiny_dataset, workers=0)
    assert TorchPredictor.from_checkpoint(pair).temperature == pytest.approx(calibration.temperature)
    onnx = export_onnx(pair, tmp_path / "pair.onnx")
    model, _ = load_model(pair)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(images).numpy()
    got = OnnxPredictor(onnx).session.run(None, {"images": images.numpy()})[0]
    assert np.max(np.abs(got - expected)) <= 1e-4  # the flip is part of the graph


def test_predict_explains_an_ensemble(pair: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    image = next((tiny_dataset / "Test" / "Fake").iterdir())
    assert main(["predict", "--model", str(pair), "--explain", str(tmp_path / "cam"), str(image)]) == 0
    assert len(list((tmp_path / "cam").glob("*.png"))) == 1


def test_an_ensemble_given_as_a_member_is_taken_apart(
    pair: Path, trained_run: Path, second_run: Path, tmp_path: Path
) -> None:
    flat = load_model(combine([pair, trained_run], tmp_path / "flat"))[0]
    picked, metadata = load_model(combine([Path(f"{pair}#1"), trained_run], tmp_path / "picked"))
    runs = [load_model(run)[0] for run in (trained_run, second_run)]
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = [run(images) for run in runs]
        assert torch.allclose(flat(images), (logits[0] + logits[1] + logits[0]) / 3, atol=1e-5)
        assert torch.allclose(picked(images), (logits[1] + logits[0]) / 2, atol=1e-5)  # tta "none" now, not the pair's
    first = metadata["ensemble"]["members"][0]
    assert first["source"] == str(second_run) and first["from_ensemble"]["member"] == 1
    assert first["from_ensemble"]["source"] == str(pair) and "from_ensemble" not in metadata["ensemble"]["members"][1]


def test_bad_members_and_empty_lists_are_refused(pair: Path, trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pick member 0 to 1"):
        combine([Path(f"{pair}#2")], tmp_path / "out-of-range")
    with pytest.raises(ConfigError, match="one network, not an ensemble"):
        combine([Path(f"{trained_run}#0")], tmp_path / "single")
    with pytest.raises(ConfigError, match="at least one"):
        combine([], tmp_path / "empty")


def test_average_is_the_weighted_mean_of_the_networks_weights(
    trained_run: Path, second_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "soup"
    argv = ["ensemble", "--average", "--weights", "1,3", "--model", str(trained_run), "--model", str(second_run)]
    assert main([*argv, "--out", str(out)]) == 0
    soup, metadata = load_model(out)
    states = [load_model(run)[0].state_dict() for run in (trained_run, second_run)]
    averaged = soup.state_dict()
    assert len(soup.members) == 1 and soup.members[0].name == "own_cnn"
    for key, tensor in averaged.items():
        first, second = (state[key.removeprefix("members.0.")] for state in states)
        expected = 0.25 * first.float() + 0.75 * second.float() if first.is_floating_point() else first
        assert torch.allclose(tensor, expected, atol=1e-6), key
    assert any("running_var" in key for key in averaged)  # batch-norm statistics are averaged too
    record = metadata["ensemble"]["members"][0]
    assert [entry["source"] for entry in record["averaged"]] == [str(trained_run), str(second_run)]
    assert [entry["weight"] for entry in record["averaged"]] == [0.25, 0.75]
    assert metadata["config"]["average"] == [0.25, 0.75]


def test_a_network_averaged_with_itself_scores_as_itself(trained_run: Path, tmp_path: Path) -> None:
    soup = load_model(combine([trained_run, trained_run], tmp_path / "self", average=True))[0]
    alone = load_model(trained_run)[0]
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(soup(images), alone(images), atol=1e-5)


def test_averaging_refuses_other_architectures_and_bad_weights(trained_run: Path, tmp_path: Path) -> None:
    own = load_model(trained_run)[0]
    other = create_model("efficientnet_lite0", dropout=0.0, pretrained=False)
    sources = [{"source": "a"}, {"source": "b"}]
    with pytest.raises(ConfigError, match="only networks of one architecture average: a is own_cnn, b is"):
        average_networks([own, other], sources)
    with pytest.raises(ConfigError, match="1 averaging weight"):
        average_networks([own, own], sources, [1.0])
    with pytest.raises(ConfigError, match="not all 0"):
        average_networks([own, own], sources, [0.0, 0.0])
    with pytest.raises(ConfigError, match="not all 0"):
        average_networks([own, own], sources, [-1.0, 2.0])


def test_weights_weigh_the_logits_and_stay_with_the_checkpoint(
    trained_run: Path, second_run: Path, tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "weighted"
    argv = ["ensemble", "--weights", "3,1", "--model", str(trained_run), "--model", str(second_run), "--tta", "hflip"]
    assert main([*argv, "--out", str(out)]) == 0
    paths = expand_paths([str(tiny_dataset / "Test")])[:6]
    members = [TorchPredictor.from_checkpoint(run, device="cpu") for run in (trained_run, second_run)]
    weighted = TorchPredictor.from_checkpoint(out, device="cpu")
    batch = weighted.preprocess([Image.open(path).convert("RGB") for path in paths])
    with torch.no_grad():
        logits = [(m.model(batch) + m.model(batch.flip(3))) / 2 for m in members]
    expected = torch.sigmoid(0.75 * logits[0] + 0.25 * logits[1]).numpy()
    got = np.array([row.p_real for row in weighted.predict_paths(paths)])
    assert np.allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, torch.sigmoid((logits[0] + logits[1]) / 2).numpy(), atol=1e-4)  # the weights count
    assert weighted.metadata["ensemble"]["weights"] == [0.75, 0.25]
    assert weighted.metadata["config"]["weights"] == [0.75, 0.25]
    onnx = export_onnx(out, tmp_path / "weighted.onnx")
    assert np.allclose([row.p_real for row in OnnxPredictor(onnx).predict_paths(paths)], got, atol=1e-4)
    with caplog.at_level("WARNING"):  # taken apart, a weighted ensemble's networks are weighed equally
        combine([out], tmp_path / "apart")
    assert "weighed equally here" in caplog.text
    assert load_model(tmp_path / "apart")[1]["ensemble"]["members"][0]["from_ensemble"]["weight"] == 0.75


def test_unreadable_weights_are_a_clear_error(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ensemble", "--average", "--weights", "0.3,x", "--model", str(trained_run), "--model", str(trained_run)]
    assert main([*argv, "--out", str(tmp_path / "bad")]) == 2
    assert "--weights '0.3,x': give numbers separated by commas" in capsys.readouterr().err


def test_route_scores_noisy_inputs_with_the_noisy_model_on_the_primarys_scale(
    trained_run: Path, second_run: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, fallback = (
        Path(shutil.copytree(run, tmp_path / name)) for run, name in ((trained_run, "a"), (second_run, "b"))
    )
    calibrate_checkpoint(primary, tiny_dataset, workers=0)
    calibrate_checkpoint(fallback, tiny_dataset, policy="balanced", workers=0)
    out = tmp_path / "routed"
    assert (
        main(
            ["route", "--model", str(primary), "--noisy-model", str(fallback), "--noise-limit", "2", "--out", str(out)]
        )
        == 0
    )
    y, x = np.mgrid[0:32, 0:32] / 32
    smooth = (np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20).round()
    noise = np.random.default_rng(0).normal(0, 8, smooth.shape)
    paths = [tmp_path / "smooth.png", tmp_path / "noisy.png"]
    for path, pixels in zip(paths, (smooth, smooth + noise), strict=True):
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    routed, first, second = (TorchPredictor.from_checkpoint(run, device="cpu") for run in (out, primary, fallback))
    rows, alone, other = (predictor.predict_paths(paths) for predictor in (routed, first, second))
    assert rows[0].noise is not None and rows[0].noise < 2 < rows[1].noise  # type: ignore[operator]
    assert rows[0].p_real == pytest.approx(alone[0].p_real, abs=1e-6)  # ordinary input: the primary, as it is
    shift = threshold_logit(first.threshold) - threshold_logit(second.threshold)
    expected = 1 / (1 + math.exp(-(threshold_logit(other[1].p_real) + shift)))  # type: ignore[arg-type]
    assert rows[1].p_real == pytest.approx(expected, abs=1e-5)  # noisy: the fallback, moved onto the primary's scale
    assert rows[1].label == other[1].label and routed.threshold == first.threshold
    assert routed.metadata["calibration"] == first.metadata["calibration"]  # carried over
    assert routed.metadata["routed"]["fallback"]["source"] == str(fallback)
    assert rows[0].model == routed.model_label == f"{primary}, noisy inputs {fallback}"
    assert routed.describe()["noise_routing"] == {"noise_limit": 2.0, "noisy_model": str(fallback)}
    assert first.describe()["noise_routing"] is None and first.describe()["noise_caution"] == 1.0
    assert architecture_of(routed.metadata) == (
        "own_cnn; inputs with estimated noise above 2 grey levels are scored by own_cnn instead"
    )
    assert rows[0].caution is None and rows[1].caution is not None and f"scored by {fallback}" in rows[1].caution
    onnx = export_onnx(out, tmp_path / "routed.onnx")  # the noise estimate and the switch are part of the graph
    got = [row.p_real for row in OnnxPredictor(onnx).predict_paths(paths)]
    assert got == pytest.approx([row.p_real for row in rows], abs=1e-4)
    with pytest.raises(CheckpointError, match="a routed detector .dfdetect route.; fine-tune one of its sources"):
        initial_weights(out, "own_cnn")
    capsys.readouterr()
    assert (
        main(
            ["route", "--model", str(primary), "--noisy-model", str(fallback), "--noise-limit", "0", "--out", str(out)]
        )
        == 2
    )
    assert "the noise limit must be a positive number of grey levels, got 0" in capsys.readouterr().err
