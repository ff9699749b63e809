"""Sharpness balancing: softened reals, sharpened fakes, seeded, only in training, and on the workers' path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dfdetect.config import load_config
from dfdetect.data.dataset import EpochSampler, FaceDataset
from dfdetect.data.discovery import list_samples
from dfdetect.data.sharpness import balance_sharpness, laplacian_variance, match_sharpness, sharpen, soften
from dfdetect.data.transforms import Preprocessing, build_eval_transform
from dfdetect.engine.trainer import input_pipeline
from dfdetect.errors import ConfigError
from tests.conftest import tiny_config

EXAMPLE = Path(__file__).parents[1] / "assets" / "examples" / "astronaut.jpg"


@pytest.fixture
def face() -> np.ndarray:
    return np.asarray(Image.open(EXAMPLE).convert("RGB"))


@pytest.mark.parametrize("change", [soften, sharpen])
def test_each_change_keeps_shape_and_dtype_and_is_seeded(change, face: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    out = change(face, np.random.default_rng(2))
    assert out.shape == face.shape and out.dtype == np.uint8 and not np.array_equal(out, face)
    np.testing.assert_array_equal(out, change(face, np.random.default_rng(2)))
    odd = face[:101, :77]
    assert change(odd, np.random.default_rng(1)).shape == odd.shape


def test_reals_are_softened_and_fakes_sharpened(face: np.ndarray) -> None:
    before = laplacian_variance(face)
    for seed in range(5):
        assert laplacian_variance(balance_sharpness(face, 1, 1.0, np.random.default_rng(seed))) < 0.7 * before
        assert laplacian_variance(balance_sharpness(face, 0, 1.0, np.random.default_rng(seed))) > 1.3 * before
    assert balance_sharpness(face, 1, 0.0, np.random.default_rng(0)) is face
    changed = [
        not np.array_equal(balance_sharpness(face, 1, 0.3, np.random.default_rng(seed)), face) for seed in range(200)
    ]
    assert 0.2 < np.mean(changed) < 0.4  # about p of them


def test_a_soft_image_is_sharpened_to_a_reference_s_sharpness(face: np.ndarray) -> None:
    soft = soften(face, np.random.default_rng(0))
    matched = match_sharpness(soft, face)
    assert laplacian_variance(soft) < 0.5 * laplacian_variance(face)
    assert abs(laplacian_variance(matched) / laplacian_variance(face) - 1) < 0.05
    assert matched.shape == face.shape and matched.dtype == np.uint8
    assert match_sharpness(face, soft) is face  # already sharper than the reference: untouched


def test_the_dataset_balances_only_seeded_training_items(tiny_dataset: Path) -> None:
    samples = list_samples(tiny_dataset / "Train")
    transform = build_eval_transform(Preprocessing(input_size=32))
    plain = FaceDataset(samples, transform)
    balanced = FaceDataset(samples, transform, balance_sharpness_p=1.0)
    sampler = EpochSampler(len(samples), shuffle=True, seed=0, seeded=True)
    for index, seed in list(sampler)[:12]:
        image, label = balanced[(index, seed)]
        assert int(label) == samples[index].label  # labels are never changed
        assert not torch.equal(image, plain[(index, seed)][0])
        assert torch.equal(image, balanced[(index, seed)][0])  # seeded per sample: the same after a resume
        assert torch.equal(balanced[index][0], plain[index][0])  # unseeded (evaluation): untouched


def test_balancing_is_checked_and_keeps_training_on_the_workers(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="balance_sharpness_p"):
        load_config(None, {"augment.balance_sharpness_p": 1.5})
    config = tiny_config(tiny_dataset, tmp_path / "run", input_pipeline="auto")
    assert input_pipeline(config, torch.device("cuda"), 10, 32) == "device_cache"
    balanced = config.replace(augment={**config.augment.__dict__, "balance_sharpness_p": 0.2})
    assert input_pipeline(balanced, torch.device("cuda"), 10, 32) == "workers"
