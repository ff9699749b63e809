from pathlib import Path

import pytest
import torch
from PIL import Image

from dfdetect.data.dataset import FaceDataset, stratified_fraction
from dfdetect.data.discovery import Sample, list_samples, split_folder
from dfdetect.data.transforms import AugmentConfig, Preprocessing, build_eval_transform, build_train_transform


def test_eval_transform_resizes_and_normalises() -> None:
    preprocessing = Preprocessing(input_size=48, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    tensor = build_eval_transform(preprocessing)(Image.new("RGB", (100, 60), (255, 0, 127)))
    assert tensor.shape == (3, 48, 48) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[:, 0, 0], torch.tensor([1.0, -1.0, 127 / 255 * 2 - 1]), atol=1e-3)


def test_train_transform_with_every_augmentation_keeps_the_shape() -> None:
    always = AugmentConfig(hflip_p=1, rotation_p=1, color_jitter_p=1, resized_crop_p=1, jpeg_p=1, blur_p=1, noise_p=1)
    transform = build_train_transform(Preprocessing(input_size=32), always)
    image = Image.effect_noise((70, 50), 40).convert("RGB")
    outputs = [transform(image) for _ in range(3)]
    assert all(output.shape == (3, 32, 32) for output in outputs)
    assert not torch.equal(outputs[0], outputs[1])  # random augmentation


def test_noise_alone_adds_noise_of_at_most_sigma_max_grey_levels() -> None:
    plain = Preprocessing(input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    noise_only = AugmentConfig(**{**AugmentConfig.none().__dict__, "noise_p": 1.0, "noise_sigma_max": 20.0})
    transform = build_train_transform(plain, noise_only)
    torch.manual_seed(0)
    added = torch.stack([transform(Image.new("RGB", (32, 32), (128, 128, 128))) for _ in range(8)]) * 255 - 128
    spread = added.std(dim=(1, 2, 3))
    assert (spread > 0).all() and (spread < 20 * 1.1).all() and spread.std() > 0.5  # a sigma of its own per image
    assert added.mean().abs() < 1.0


def test_no_augmentation_equals_evaluation() -> None:
    preprocessing = Preprocessing(input_size=32)
    image = Image.effect_noise((40, 40), 40).convert("RGB")
    assert torch.equal(
        build_train_transform(preprocessing, AugmentConfig.none())(image),
        build_eval_transform(preprocessing)(image),
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jpeg_p": 1.5}, "jpeg_p"),
        ({"jpeg_quality_min": 90, "jpeg_quality_max": 40}, "jpeg_quality"),
        ({"resized_crop_min_scale": 0}, "resized_crop_min_scale"),
        ({"noise_p": -0.1}, "noise_p"),
        ({"noise_sigma_max": 0}, "noise_sigma_max"),
    ],
)
def test_invalid_augmentation_is_named(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**changes)


def test_dataset_returns_tensor_and_float_label(tiny_dataset: Path) -> None:
    samples = list_samples(split_folder(tiny_dataset, "Train"))
    dataset = FaceDataset(samples, build_eval_transform(Preprocessing(input_size=32)))
    image, label = dataset[0]
    assert image.shape == (3, 32, 32) and label.item() == samples[0].label


def test_stratified_fraction_keeps_the_class_balance() -> None:
    samples = [Sample(Path(f"{i}.jpg"), int(i < 300)) for i in range(1000)]
    subset = stratified_fraction(samples, 0.1, seed=3)
    assert len(subset) == 100
    assert sum(sample.label for sample in subset) == 30
    assert subset == stratified_fraction(samples, 0.1, seed=3)
    assert subset != stratified_fraction(samples, 0.1, seed=4)
    assert stratified_fraction(samples, 1.0, seed=0) == samples
