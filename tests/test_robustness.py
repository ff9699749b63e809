"""Each perturbation does what it says, sweeps are reproducible, and user files are never touched."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dfdetect import robustness as rb
from dfdetect.cli import main
from dfdetect.errors import ConfigError


@pytest.fixture
def photo() -> np.ndarray:
    """A textured 64 x 48 RGB image (odd-free sizes are tested separately)."""
    generator = np.random.default_rng(0)
    smooth = cv2.resize(generator.integers(0, 255, (8, 6, 3), dtype=np.uint8), (48, 64))
    return np.clip(smooth.astype(int) + generator.integers(-20, 20, smooth.shape), 0, 255).astype(np.uint8)


def rng() -> np.random.Generator:
    return rb.image_rng(0, 0, 0, 0)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_jpeg_really_re_encodes_at_the_quality(photo: np.ndarray) -> None:
    for quality in (95, 30):
        data = rb.jpeg_bytes(photo, quality)
        with Image.open(io.BytesIO(data)) as encoded:
            assert encoded.format == "JPEG" and encoded.size == (48, 64)
            tables = encoded.quantization
        reference = io.BytesIO()
        Image.fromarray(photo).save(reference, format="JPEG", quality=quality)
        with Image.open(reference) as expected:
            assert tables == expected.quantization  # the quantisation tables of that quality
    assert mse(rb.jpeg(photo, 30, rng()), photo) > mse(rb.jpeg(photo, 95, rng()), photo) > 0
    assert len(rb.jpeg_bytes(photo, 30)) < len(rb.jpeg_bytes(photo, 95))


def test_resampling_blur_and_noise(photo: np.ndarray) -> None:
    sharpness = lambda image: cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()  # noqa: E731
    assert rb.downscale(photo, 0.25, rng()).shape == photo.shape
    assert sharpness(rb.downscale(photo, 0.25, rng())) < sharpness(rb.downscale(photo, 0.75, rng())) < sharpness(photo)
    assert sharpness(rb.blur(photo, 3, rng())) < sharpness(rb.blur(photo, 1, rng())) < sharpness(photo)
    flat = np.full((200, 200, 3), 128, dtype=np.uint8)
    noisy = rb.noise(flat, 10.0, rng())
    assert np.std(noisy.astype(float) - 128) == pytest.approx(10.0, rel=0.05)
    np.testing.assert_array_equal(noisy, rb.noise(flat, 10.0, rb.image_rng(0, 0, 0, 0)))  # same seed, same noise
    assert not np.array_equal(noisy, rb.noise(flat, 10.0, rb.image_rng(1, 0, 0, 0)))


def test_deeperforensics_distortions(photo: np.ndarray) -> None:
    grey = rb.df_color_saturation(photo, 0.0, rng()).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 2 and np.abs(grey[..., 1] - grey[..., 2]).max() <= 2
    kept = rb.df_color_saturation(photo, 1.0, rng()).astype(int)
    assert np.abs(kept - photo.astype(int)).max() <= 2  # factor 1 changes nothing but rounding
    np.testing.assert_array_equal(rb.df_color_contrast(photo, 0.5, rng()), (photo * 0.5).astype(np.uint8))
    blocks = rb.df_block_wise(photo, 80, rng())
    changed = np.any(blocks != photo, axis=2)
    assert changed.any() and np.all(blocks[changed] == 128)  # only grey block pixels change
    assert (rb.df_block_wise(photo, 16, rng()) != photo).any()  # small crops get blocks too (adapted count)
    noisy = rb.df_gaussian_noise_color(photo, 0.05, rng())
    assert mse(noisy, photo) > mse(rb.df_gaussian_noise_color(photo, 0.001, rng()), photo) > 0
    np.testing.assert_array_equal(rb.df_gaussian_blur(photo, 7, rng()), cv2.GaussianBlur(photo, (7, 7), 7 / 6))
    pixelated = rb.df_jpeg(photo, 4, rng())
    assert pixelated.shape == photo.shape
    np.testing.assert_array_equal(pixelated, cv2.resize(cv2.resize(photo, (12, 16)), (48, 64)))


def test_video_compression_is_real_h264_and_keeps_odd_sizes(photo: np.ndarray) -> None:
    pytest.importorskip("av")
    odd = photo[:63, :47]
    strong, mild = rb.df_video_compression(odd, 40, rng()), rb.df_video_compression(odd, 30, rng())
    assert strong.shape == odd.shape == mild.shape
    assert mse(strong, odd) > mse(mild, odd) > 0


def test_levels_and_sets_follow_deeperforensics() -> None:
    assert [p.name for p in rb.select("deeperforensics")] == [
        "df-cs", "df-cc", "df-bw", "df-gnc", "df-gb", "df-jpeg", "df-vc",
    ]  # fmt: skip
    assert rb.PERTURBATIONS["df-gnc"].levels == (0.001, 0.002, 0.005, 0.01, 0.05)
    assert rb.PERTURBATIONS["df-vc"].levels == (30, 32, 35, 38, 40)
    assert rb.PERTURBATIONS["jpeg"].levels == (95, 75, 50, 30)
    assert [p.name for p in rb.select("jpeg,basic")] == ["jpeg", "downscale", "blur", "noise"]
    with pytest.raises(ConfigError, match="unknown perturbation 'rain'"):
        rb.select("rain")


def test_levels_replace_a_chosen_perturbations_levels_and_keep_their_type() -> None:
    chosen = rb.select("basic", ["noise=1,2.5", "jpeg=90"])
    assert [(p.name, p.levels) for p in chosen if p.name in ("noise", "jpeg")] == [
        ("jpeg", (90,)),
        ("noise", (1.0, 2.5)),
    ]
    assert chosen[1] == rb.PERTURBATIONS["downscale"] and rb.PERTURBATIONS["noise"].levels == (5.0, 10.0, 20.0)
    for text, match in (
        ("jpeg=2.5", "with int values"),
        ("noise=-1", "values >= 0"),
        ("noise=nan", "values >= 0"),
        ("noise=", "noise=5.0,10.0,20.0"),
        ("rain=1", "unknown perturbation 'rain'"),
        ("df-bw=16", "'df-bw' is not among the chosen"),
    ):
        with pytest.raises(ConfigError, match=match):
            rb.select("basic", [text])


def test_sweep_is_reproducible_and_reports_every_level(photo: np.ndarray) -> None:
    images = [photo, photo[::-1].copy(), photo[:, ::-1].copy(), 255 - photo]
    labels = np.array([1, 1, 0, 0])

    def score(batch: list[Image.Image]) -> np.ndarray:  # a fixed "model": brighter is more real
        return np.array([np.asarray(image).mean() / 255 for image in batch])

    chosen = rb.select("noise,df-bw")
    first = rb.sweep(score, images, labels, chosen, 0.5, seed=3, batch_size=3)
    assert first == rb.sweep(score, images, labels, chosen, 0.5, seed=3, batch_size=2)  # batching does not matter
    assert first != rb.sweep(score, images, labels, chosen, 0.5, seed=4)
    assert [row["level"] for row in first["df-bw"]["levels"]] == [1, 2, 3, 4, 5]
    assert set(first["clean"]) == {"auc", "accuracy", "average_precision", "mean_p_fake"}


def test_robustness_command_writes_the_report_and_leaves_the_data_alone(
    trained_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    def fingerprint() -> str:
        digest = hashlib.sha256()
        for path in sorted((tiny_dataset / "Test").rglob("*")):
            digest.update(path.read_bytes() if path.is_file() else path.name.encode())
        return digest.hexdigest()

    before = fingerprint()
    out = tmp_path / "robustness"
    flags = ["--runtime", "torch", "--device", "cpu", "--perturbations", "jpeg,df-cs", "--levels", "jpeg=90,40"]
    assert (
        main(["robustness", "--model", str(trained_run), "--data", str(tiny_dataset), *flags, "--out", str(out)]) == 0
    )
    assert fingerprint() == before
    results = json.loads((out / "robustness.json").read_text())
    assert [level["parameter"] for level in results["jpeg"]["levels"]] == [90, 40] and len(
        results["df-cs"]["levels"]
    ) == 5
    assert (out / "robustness-jpeg.png").is_file() and "| df-cs | 5 |" in (out / "robustness.md").read_text()
