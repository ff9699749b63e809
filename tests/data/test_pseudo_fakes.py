"""Pseudo-fakes made from real faces: what each maker does, seeded, and that a model learns from them alone."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from dfdetect.config import TrainConfig
from dfdetect.data.dataset import EpochSampler, FaceDataset
from dfdetect.data.discovery import list_samples
from dfdetect.data.pseudo_fakes import MAKERS, blend, face_landmarks, parse_makers, upsample_trace
from dfdetect.data.sharpness import laplacian_variance
from dfdetect.data.synthetic import make_synthetic_dataset
from dfdetect.data.transforms import Preprocessing, build_eval_transform
from dfdetect.engine.trainer import fit
from dfdetect.errors import ConfigError
from dfdetect.runtime.torch_backend import TorchPredictor
from tests.conftest import nyquist_peak, tiny_config

EXAMPLE = Path(__file__).parents[1] / "assets" / "examples" / "astronaut.jpg"


@pytest.fixture
def face() -> np.ndarray:
    return np.asarray(Image.open(EXAMPLE).convert("RGB"))


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_makers_keep_shape_dtype_and_are_seeded(name: str, face: np.ndarray) -> None:
    make = MAKERS[name]
    out = make(face, np.random.default_rng(5))
    assert out.shape == face.shape and out.dtype == np.uint8 and not np.array_equal(out, face)
    np.testing.assert_array_equal(out, make(face, np.random.default_rng(5)))
    assert not np.array_equal(out, make(face, np.random.default_rng(6)))
    odd = face[:101, :77]
    assert make(odd, np.random.default_rng(1)).shape == odd.shape


def test_self_blending_changes_only_what_the_mask_covers(face: np.ndarray) -> None:
    blended, mask = blend(face, np.random.default_rng(3))
    assert 0.25 <= mask.max() <= 1.0  # the blend ratio scales the mask
    outside, inside = mask < 1e-6, mask > 0.9 * mask.max()
    assert outside.mean() > 0.3 and inside.mean() > 0.1  # a face-sized region, not the whole crop
    np.testing.assert_array_equal(blended[outside], face[outside])
    assert np.abs(blended[inside].astype(int) - face[inside].astype(int)).mean() > 1
    height, width = mask.shape
    ys, xs = np.nonzero(inside)
    assert abs(xs.mean() - width / 2) < width * 0.15 and abs(ys.mean() - height * 0.53) < height * 0.15


def test_landmark_masks_follow_the_face(face: np.ndarray) -> None:
    landmarks = face_landmarks(face)
    assert landmarks is not None and landmarks.shape == (5, 2)
    blended, mask = blend(face, np.random.default_rng(4), landmarks)
    outside, inside = mask < 1e-6, mask > 0.9 * mask.max()
    np.testing.assert_array_equal(blended[outside], face[outside])  # only the masked region changes
    ys, xs = np.nonzero(inside)
    assert np.hypot(xs.mean() - landmarks[2, 0], ys.mean() - landmarks[2, 1]) < 0.6 * np.ptp(landmarks[:, 1])
    assert inside.mean() < 0.5  # the inner face, not the whole photo
    shifted = np.pad(face, ((0, 0), (60, 0), (0, 0)), mode="edge")[:, : face.shape[1]]  # the face 60 px right
    moved = face_landmarks(shifted)
    assert moved is not None and abs(float(np.mean(moved[:, 0] - landmarks[:, 0])) - 60) < 6
    _, moved_mask = blend(shifted, np.random.default_rng(4), moved)
    moved_xs = np.nonzero(moved_mask > 0.9 * moved_mask.max())[1]
    assert abs(moved_xs.mean() - xs.mean() - 60) < 8


def test_without_a_face_the_landmark_blend_falls_back_to_the_ellipse() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    assert face_landmarks(noise) is None
    out = MAKERS["sbi-landmarks"](noise, np.random.default_rng(2))
    np.testing.assert_array_equal(out, MAKERS["sbi"](noise, np.random.default_rng(2)))


def test_the_upsampler_leaves_a_periodic_trace(face: np.ndarray) -> None:
    assert nyquist_peak(face) < 20
    assert nyquist_peak(upsample_trace(face, np.random.default_rng(0))) > 100
    for seed in range(5):  # the sharp variant: the same kind of trace, weaker (its strength is drawn)
        assert nyquist_peak(MAKERS["upsample-sharp"](face, np.random.default_rng(seed))) > 40


def test_the_sharp_trace_keeps_the_face_s_own_detail(face: np.ndarray) -> None:
    def content_sharpness(image: np.ndarray) -> float:  # 2x2 averaging removes the period-2 trace itself
        half = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return laplacian_variance(half)

    def change(image: np.ndarray) -> float:
        return float(np.abs(image.astype(int) - face.astype(int)).mean())

    for seed in range(5):  # the same seed draws the same checkerboard kernel for both makers
        soft = upsample_trace(face, np.random.default_rng(seed))
        assert content_sharpness(soft) < 0.6 * content_sharpness(face)  # a softer face
        sharp = MAKERS["upsample-sharp"](face, np.random.default_rng(seed))
        assert 0.9 < content_sharpness(sharp) / content_sharpness(face) < 1.1
        assert change(sharp) < change(soft)  # the trace without the lost detail


def test_pseudo_fake_options_are_checked() -> None:
    assert (
        parse_makers("sbi, sbi-landmarks,upsample") == ["sbi", "sbi-landmarks", "upsample"] and parse_makers("") == []
    )
    with pytest.raises(ConfigError, match="unknown pseudo-fake"):
        TrainConfig(pseudo_fakes="sbi,faceswap")
    with pytest.raises(ConfigError, match="without the dataset's fakes"):
        TrainConfig(real_fakes=False)


def test_the_dataset_turns_a_seeded_share_of_reals_into_fakes(tiny_dataset: Path) -> None:
    reals = [s for s in list_samples(tiny_dataset / "Train") if s.label == 1]
    dataset = FaceDataset(reals, build_eval_transform(Preprocessing(input_size=32)), pseudo_fakes=["upsample"])
    sampler = EpochSampler(len(reals), shuffle=True, seed=0, seeded=True)
    sampler.set_epoch(1)
    labels = [int(dataset[key][1]) for key in sampler]
    assert 0.2 < labels.count(0) / len(labels) < 0.8  # about half, pseudo_fake_p = 0.5
    assert labels == [int(dataset[key][1]) for key in sampler]  # the same draws again: seeded per sample
    assert all(int(dataset[index][1]) == 1 for index in range(len(reals)))  # unseeded (evaluation): untouched


def test_a_model_trained_on_pseudo_fakes_alone_separates_held_out_ones(tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "data", {"Train": 96, "Validation": 8, "Test": 24}, image_size=32, seed=1)
    no_augment = {"hflip_p": 0.5, "rotation_p": 0.0, "color_jitter_p": 0.0, "resized_crop_p": 0.0, "jpeg_p": 0.0}
    config = tiny_config(data, tmp_path / "run", epochs=6, patience=10, lr=3e-3).replace(
        pseudo_fakes="upsample", real_fakes=False, augment={**no_augment, "blur_p": 0.0}
    )
    result = fit(config)
    assert result.model is not None
    predictor = TorchPredictor(result.model, device="cpu")
    held_out = [Image.open(s.path).convert("RGB") for s in list_samples(data / "Test") if s.label == 1]
    generator = np.random.default_rng(99)
    fakes = [Image.fromarray(upsample_trace(np.asarray(image), generator)) for image in held_out]
    scores = predictor.predict_images(held_out + fakes)
    labels = [1] * len(held_out) + [0] * len(fakes)
    assert roc_auc_score(labels, scores) > 0.9  # it never saw a fake from the dataset, only its own pseudo-fakes
