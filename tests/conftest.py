"""Shared fixtures: small generated datasets, so every test runs without the real data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfdetect.config import TrainConfig
from dfdetect.data.synthetic import make_synthetic_dataset

TINY_MODEL_FLAGS = ["--model", "own_cnn", "--image-size", "32", "--batch-size", "8"]
TINY_TRAIN_FLAGS = [*TINY_MODEL_FLAGS, "--workers", "0"]
"""Command-line options for a seconds-long training run on `tiny_dataset`."""


def tiny_config(data: Path, out: Path, **changes: object) -> TrainConfig:
    """A seconds-long own_cnn run on `tiny_dataset` (32 px, batch 8, no workers); `changes` override any key."""
    defaults: dict[str, object] = {"model": "own_cnn", "image_size": 32, "batch_size": 8, "workers": 0, "epochs": 1}
    return TrainConfig(data=data, out=out, **{**defaults, **changes})  # type: ignore[arg-type]


def nyquist_peak(image: np.ndarray) -> float:
    """The grey image's spectrum at the highest frequencies (period 2, across and down) over its median: the
    periodic trace an up-sampler leaves (a face without one stays under about 10)."""
    grey = image.astype(float).mean(axis=2)
    spectrum = np.abs(np.fft.fft2(grey - grey.mean()))
    height, width = spectrum.shape
    peak = max(spectrum[height // 2, width // 2], spectrum[0, width // 2], spectrum[height // 2, 0])
    return float(peak / np.median(spectrum))


REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dfdc-faces"


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exports the OpenVINO runtime keeps between runs go to a folder of the test session's (subprocesses too), not
    to the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DFDETECT_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train 48 / Validation 24 / Test 24 synthetic 32-pixel images, half Real, half Fake."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    return make_synthetic_dataset(root, {"Train": 48, "Validation": 24, "Test": 24}, image_size=32, seed=1)


@pytest.fixture(scope="session")
def trained_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """own_cnn trained for one epoch on the tiny set (32 px): a real run folder for the tools that use one."""
    from dfdetect.engine.trainer import fit

    run = tmp_path_factory.mktemp("trained") / "own_cnn"
    fit(tiny_config(tiny_dataset, run))
    return run


@pytest.fixture
def real_data() -> Path:
    """The DFDC face crops beside the repository; skips the test where they are absent."""
    if not (REAL_DATA / "Test").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA


FACE_BOX = (150, 40, 330, 220)
"""The astronaut's head in scikit-image's photo (public domain, NASA)."""


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """An H.264 mp4 of RGB frames (PyAV, the FFmpeg inside its wheel)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def face_frames(count: int = 20, size: int = 100) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """A face moving right across a 320 x 240 grey scene; returns frames and the face crop's top-left corners."""
    from skimage import data as skimage_data

    face = Image.fromarray(skimage_data.astronaut()).crop(FACE_BOX).resize((size, size))
    frames, corners = [], []
    for index in range(count):
        scene = Image.new("RGB", (320, 240), (90, 110, 100))
        corner = (10 + index * 8, 60)
        scene.paste(face, corner)
        frames.append(np.asarray(scene))
        corners.append(corner)
    return frames, corners
