"""The CUDA input path (decoded cache + batch augmentation), exercised on the CPU where CI runs."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dfdetect.data.dataset import EpochSampler
from dfdetect.data.discovery import list_samples, split_folder
from dfdetect.data.gpu_pipeline import BatchAugment, CachedBatches, DecodedImages
from dfdetect.data.transforms import build_eval_transform
from dfdetect.engine.trainer import fit, input_pipeline
from dfdetect.preprocessing import AugmentConfig, Preprocessing
from tests.conftest import tiny_config

PRE = Preprocessing(input_size=32)


@pytest.fixture(scope="module")
def cache(tiny_dataset: Path) -> DecodedImages:
    return DecodedImages(list_samples(split_folder(tiny_dataset, "Test")), PRE)


def test_cache_holds_every_image_decoded_once(cache: DecodedImages, tiny_dataset: Path) -> None:
    samples = list_samples(split_folder(tiny_dataset, "Test"))
    assert cache.images.shape == (24, 3, 32, 32) and cache.images.dtype == torch.uint8
    first = np.asarray(Image.open(samples[0].path).convert("RGB"))
    assert np.array_equal(cache.images[0].permute(1, 2, 0).numpy(), first)
    assert cache.labels.tolist() == [float(s.label) for s in samples]


def test_no_augmentation_matches_the_eval_transform(cache: DecodedImages) -> None:
    batch = BatchAugment(None, PRE)(cache.images[:4])
    expected = torch.stack(
        [build_eval_transform(PRE)(Image.fromarray(img.permute(1, 2, 0).numpy())) for img in cache.images[:4]]
    )
    assert torch.allclose(batch, expected, atol=1e-5)
    assert torch.allclose(BatchAugment(AugmentConfig.none(), PRE)(cache.images[:4]), expected, atol=1e-5)


def test_flip_alone_mirrors_the_images(cache: DecodedImages) -> None:
    flip_only = AugmentConfig.none().__class__(**{**AugmentConfig.none().__dict__, "hflip_p": 1.0})
    flipped = BatchAugment(flip_only, PRE)(cache.images[:4])
    assert torch.allclose(flipped, BatchAugment(None, PRE)(cache.images[:4]).flip(-1), atol=1e-4)


def test_noise_alone_adds_noise_of_at_most_sigma_max_grey_levels() -> None:
    grey = torch.full((8, 3, 32, 32), 128, dtype=torch.uint8)
    plain = Preprocessing(input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    noise_only = AugmentConfig(**{**AugmentConfig.none().__dict__, "noise_p": 1.0, "noise_sigma_max": 20.0})
    added = (BatchAugment(noise_only, plain)(grey, torch.Generator().manual_seed(0)) - 128 / 255) * 255
    spread = added.std(dim=(1, 2, 3))
    assert (spread > 0).all() and (spread < 20 * 1.1).all() and spread.std() > 0.5  # a sigma of its own per image
    assert added.mean().abs() < 1.0
    half = AugmentConfig(**{**noise_only.__dict__, "noise_p": 0.5})
    touched = (BatchAugment(half, plain)(grey, torch.Generator().manual_seed(3)) * 255 - 128).abs().amax((1, 2, 3))
    assert 0 < (touched > 0.5).sum() < 8


def test_full_augmentation_is_seeded_and_random(cache: DecodedImages) -> None:
    always = AugmentConfig(hflip_p=1, rotation_p=1, color_jitter_p=1, resized_crop_p=1, jpeg_p=1, blur_p=1, noise_p=1)
    augment = BatchAugment(always, PRE)
    first = augment(cache.images[:6], torch.Generator().manual_seed(1))
    again = augment(cache.images[:6], torch.Generator().manual_seed(1))
    other = augment(cache.images[:6], torch.Generator().manual_seed(2))
    assert first.shape == (6, 3, 32, 32) and torch.isfinite(first).all()
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.allclose(first, BatchAugment(None, PRE)(cache.images[:6]), atol=1e-2)


def test_cached_batches_follow_the_sampler(cache: DecodedImages) -> None:
    sampler = EpochSampler(len(cache), shuffle=True, seed=4, seeded=True)
    batches = CachedBatches(cache, sampler, 10, torch.device("cpu"), BatchAugment(None, PRE))
    assert len(batches) == 3
    labels = torch.cat([labels for _, labels in batches])
    order = [index for index, _ in sampler]
    assert labels.tolist() == cache.labels[order].tolist()


def test_trainer_runs_on_the_cache_and_auto_picks_workers_on_cpu(
    tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=2, input_pipeline="device_cache")
    with caplog.at_level(logging.INFO, logger="dfdetect"):
        result = fit(config)
    assert result.epochs_run == 2 and all(np.isfinite(row["val_loss"]) for row in result.history)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("input (")]
    assert len(said) == 2 and all("uint8 cache of" in line and "on cpu" in line for line in said), said
    assert input_pipeline(config.replace(input_pipeline="auto"), torch.device("cpu"), 10, 32) == "workers"
    assert input_pipeline(config.replace(input_pipeline="auto"), torch.device("cuda"), 10, 32) == "device_cache"
    too_big = config.replace(input_pipeline="auto", cache_max_gb=0.0)
    assert input_pipeline(too_big, torch.device("cuda"), 10, 32) == "workers"
