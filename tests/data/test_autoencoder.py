"""The `autoencoder` pseudo-fake: a decoder trained on real faces, stored safely, rebuilding faces with its trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score

from dfdetect.data.autoencoder import (
    FaceAutoencoder,
    Reconstructor,
    autoencoder_for,
    load_autoencoder,
    reconstruct,
    save_autoencoder,
    train_autoencoder,
)
from dfdetect.data.discovery import list_samples
from dfdetect.data.pseudo_fakes import make_pseudo_fake, parse_makers
from dfdetect.data.sharpness import laplacian_variance
from dfdetect.data.synthetic import make_synthetic_dataset
from dfdetect.engine.trainer import fit
from dfdetect.errors import CheckpointError, ConfigError
from dfdetect.run_folder import RunFolder
from dfdetect.runtime.torch_backend import TorchPredictor
from tests.conftest import nyquist_peak, tiny_config

EXAMPLE = Path(__file__).parents[1] / "assets" / "examples" / "astronaut.jpg"


@pytest.fixture
def face() -> np.ndarray:
    return np.asarray(Image.open(EXAMPLE).convert("RGB"))


def real_faces(data: Path) -> list[Path]:
    return [sample.path for sample in list_samples(data / "Train") if sample.label == 1]


@pytest.fixture(scope="module")
def autoencoder_file(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    file = tmp_path_factory.mktemp("autoencoder") / "ae.safetensors"
    model, record = train_autoencoder(real_faces(tiny_dataset), size=32, epochs=3, batch_size=8, width=8, code=16)
    save_autoencoder(file, model, record)
    return file


def test_training_learns_to_rebuild_real_faces(tiny_dataset: Path) -> None:
    faces = [np.asarray(Image.open(path).convert("RGB")) for path in real_faces(tiny_dataset)]

    def error(model: FaceAutoencoder) -> float:
        return float(np.mean([np.abs(reconstruct(model, image) - image).mean() for image in faces]))

    torch.manual_seed(0)  # the weights training starts from (seed 0), not whatever the global generator holds
    untrained = FaceAutoencoder(8, 16).eval()
    model, record = train_autoencoder(
        real_faces(tiny_dataset), size=32, epochs=12, batch_size=8, lr=5e-3, width=8, code=16
    )
    assert record["trained_on"] == len(faces) and len(record["l1_per_epoch"]) == 12
    assert record["l1_per_epoch"][-1] < 0.9 * record["l1_per_epoch"][0]
    assert error(model) < 0.95 * error(untrained)  # synthetic textures: 72 steps take about a tenth off (0.89)
    with pytest.raises(ConfigError, match="multiple of 8"):
        train_autoencoder(real_faces(tiny_dataset), size=30)
    with pytest.raises(ConfigError, match="no real faces"):
        train_autoencoder([])


def test_training_is_seeded(tiny_dataset: Path) -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        model, _ = train_autoencoder(
            real_faces(tiny_dataset), size=32, epochs=2, batch_size=8, width=8, code=16, seed=seed
        )
        return list(model.state_dict().values())

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_the_maker_keeps_shape_dtype_and_is_seeded(autoencoder_file: Path, face: np.ndarray) -> None:
    make = Reconstructor(autoencoder_file)
    out = make(face, np.random.default_rng(5))
    assert out.shape == face.shape and out.dtype == np.uint8 and not np.array_equal(out, face)
    np.testing.assert_array_equal(out, make(face, np.random.default_rng(5)))
    assert not np.array_equal(out, make(face, np.random.default_rng(6)))  # another strength
    odd = face[:101, :77]  # padded to a multiple of 8 inside, cropped back
    assert make(odd, np.random.default_rng(1)).shape == odd.shape
    rebuilt = reconstruct(make.model, face)
    assert rebuilt.min() >= 0 and rebuilt.max() <= 255
    weakest = np.abs(out.astype(float) - face).mean() / np.abs(rebuilt - face).mean()
    assert 0.45 < weakest < 1.05  # the reconstruction's share lies in [0.5, 1]


def test_the_sharp_variant_keeps_the_real_face_s_sharpness(autoencoder_file: Path, face: np.ndarray) -> None:
    soft, sharp = Reconstructor(autoencoder_file), Reconstructor(autoencoder_file, sharp=True)
    for seed in range(3):
        rebuilt = soft(face, np.random.default_rng(seed))
        assert laplacian_variance(rebuilt) < 0.8 * laplacian_variance(face)  # the decoder loses detail
        made = sharp(face, np.random.default_rng(seed))
        assert made.shape == face.shape and made.dtype == np.uint8
        assert abs(laplacian_variance(made) / laplacian_variance(face) - 1) < 0.05
        assert np.abs(made.astype(int) - face.astype(int)).mean() > 1  # still not the real face
        np.testing.assert_array_equal(made, sharp(face, np.random.default_rng(seed)))


def test_the_decoder_leaves_a_periodic_trace(autoencoder_file: Path, face: np.ndarray) -> None:
    assert nyquist_peak(face) < 10
    for seed in range(3):
        assert nyquist_peak(Reconstructor(autoencoder_file)(face, np.random.default_rng(seed))) > 20
        assert nyquist_peak(Reconstructor(autoencoder_file, sharp=True)(face, np.random.default_rng(seed))) > 20


def test_the_file_round_trips_and_bad_files_are_named(autoencoder_file: Path, face: np.ndarray, tmp_path: Path) -> None:
    model, record = load_autoencoder(autoencoder_file)
    assert (model.width, model.code, record["crop_size"]) == (8, 16, 32) and not model.training
    again = tmp_path / "again.safetensors"
    save_autoencoder(again, model, record)
    np.testing.assert_array_equal(reconstruct(load_autoencoder(again)[0], face), reconstruct(model, face))
    with pytest.raises(CheckpointError, match="missing.safetensors: auto-encoder file not found"):
        load_autoencoder(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="garbage.safetensors: not a readable safetensors file"):
        load_autoencoder(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": model.encoder[0].weight.detach()}, str(foreign))
    with pytest.raises(CheckpointError, match="foreign.safetensors: not a dfdetect auto-encoder"):
        load_autoencoder(foreign)
    mismatched = tmp_path / "mismatched.safetensors"
    save_autoencoder(mismatched, model, {**record, "width": 16})
    with pytest.raises(CheckpointError, match="mismatched.safetensors: its weights do not fit"):
        load_autoencoder(mismatched)


def test_the_file_is_trained_once_then_read(tiny_dataset: Path, tmp_path: Path) -> None:
    file = tmp_path / "shared" / "ae.safetensors"
    assert autoencoder_for(real_faces(tiny_dataset), file, 10**7) == file and file.is_file()
    written = file.stat().st_mtime_ns
    assert autoencoder_for(real_faces(tiny_dataset), file, 10**7) == file
    assert file.stat().st_mtime_ns == written


def test_the_maker_is_named_and_needs_its_network(face: np.ndarray) -> None:
    assert parse_makers("sbi,autoencoder,autoencoder-sharp") == ["sbi", "autoencoder", "autoencoder-sharp"]
    with pytest.raises(ConfigError, match="the autoencoder pseudo-fake needs a trained auto-encoder"):
        make_pseudo_fake(face, ["autoencoder"], np.random.default_rng(0))
    with pytest.raises(ConfigError, match="the autoencoder-sharp pseudo-fake needs"):
        make_pseudo_fake(face, ["autoencoder-sharp"], np.random.default_rng(0), trained={"autoencoder": lambda i, r: i})


def test_a_model_trained_on_reconstructions_alone_separates_held_out_ones(
    autoencoder_file: Path, tmp_path: Path
) -> None:
    data = make_synthetic_dataset(tmp_path / "data", {"Train": 96, "Validation": 8, "Test": 24}, image_size=32, seed=1)
    no_augment = {"hflip_p": 0.5, "rotation_p": 0.0, "color_jitter_p": 0.0, "resized_crop_p": 0.0, "jpeg_p": 0.0}
    config = tiny_config(data, tmp_path / "run", epochs=6, patience=10, lr=3e-3).replace(
        pseudo_fakes="autoencoder",
        real_fakes=False,
        augment={**no_augment, "blur_p": 0.0},
        autoencoder=autoencoder_file,
    )
    result = fit(config)  # --autoencoder FILE: read, not trained again nor copied into the run
    assert result.model is not None and not RunFolder(tmp_path / "run").autoencoder.exists()
    predictor = TorchPredictor(result.model, device="cpu")
    held_out = [Image.open(s.path).convert("RGB") for s in list_samples(data / "Test") if s.label == 1]
    make, generator = Reconstructor(autoencoder_file), np.random.default_rng(99)
    fakes = [Image.fromarray(make(np.asarray(image), generator)) for image in held_out]
    scores = predictor.predict_images(held_out + fakes)
    labels = [1] * len(held_out) + [0] * len(fakes)
    assert roc_auc_score(labels, scores) > 0.9  # it never saw a fake from the dataset, only reconstructions
    fit(tiny_config(data, tmp_path / "run2", pseudo_fakes="autoencoder-sharp"))  # without one: trained into the run
    assert load_autoencoder(RunFolder(tmp_path / "run2").autoencoder)[1]["trained_on"] == 48  # Train's reals only
