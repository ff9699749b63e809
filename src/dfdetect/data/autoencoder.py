"""Generator traces from a decoder trained on real faces (`--pseudo-fakes autoencoder`), after AutoGAN.

Zhang, Karaman & Chang (2019) made their fakes by passing real images through an auto-encoder trained on real
images only: its decoder up-samples as a generator does, so what it returns carries a generator's traces without
any generator's look. `upsample` imitates that with a fixed up-sampling kernel; this module trains the decoder:

    encoder  Conv 4x4 stride 2 (3 -> w) - LeakyReLU - Conv (w -> 2w) - LeakyReLU - Conv (2w -> code) - LeakyReLU
    decoder  ConvTranspose 4x4 stride 2 (code -> 2w) - ReLU - ConvTranspose (2w -> w) - ReLU - ConvTranspose (w -> 3)
             - sigmoid

The code is 1/8 of the face's side with `code` channels (64 of them keep a third of the input's numbers), so the
decoder rebuilds the face's content but not all its detail, and its three transposed convolutions leave their
periodic pattern. It is trained once per run (L1 loss on random square crops of Train's real faces, a few
minutes on a CPU) before the first epoch into `RUN/autoencoder.safetensors`, or read from `--autoencoder FILE`
(trained and written there when the file does not exist yet), so several runs can share one. The file holds the
weights and, in its safetensors header, its shape and how it was trained; nothing is unpickled.

A pseudo-fake is the face's reconstruction at the face's own size (fully convolutional; reflect-padded to a
multiple of 8 and cropped back), mixed with the face at a random strength in [0.5, 1] drawn from the maker's
generator: the same generator state gives the same image. The decoder does not rebuild the finest detail, so these
pseudo-fakes are softer than their reals, more so than DFDC's own fakes (docs/results.md, section 30), and would
teach "the softer face is the fake" (section 18); `autoencoder-sharp` sharpens each one by unsharp masking until its
Laplacian variance matches the real face's (data.sharpness.match_sharpness), so only the decoder's look is left.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dfdetect.data.dataset import EpochSampler
from dfdetect.data.images import DEFAULT_MAX_PIXELS, load_rgb
from dfdetect.data.sharpness import match_sharpness
from dfdetect.errors import CheckpointError, ConfigError
from dfdetect.stores import atomic_write, read_safetensors

logger = logging.getLogger(__name__)

FORMAT = "dfdetect-autoencoder/1"
METADATA_KEY = "dfdetect_autoencoder"
STRIDE = 8
"""The code's stride: a face's sides are padded to a multiple of it."""
STRENGTH = (0.5, 1.0)
"""The share of the reconstruction in a pseudo-fake, drawn uniformly per image."""


class FaceAutoencoder(nn.Module):
    """Three stride-2 convolutions down to a code at 1/8 of the side, three stride-2 transposed ones back."""

    def __init__(self, width: int = 32, code: int = 64) -> None:
        super().__init__()
        self.width, self.code = width, code
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, code, 4, 2, 1),
            nn.LeakyReLU(0.2),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(code, 2 * width, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 3, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], (N, 3, H, W) with H and W multiples of 8, rebuilt at the same size."""
        return self.decoder(self.encoder(images))


def reconstruct(model: FaceAutoencoder, image: np.ndarray) -> np.ndarray:
    """`model`'s reconstruction of an RGB uint8 (H, W, 3) face, as floats in [0, 255] of the same shape."""
    height, width = image.shape[:2]
    pad_h, pad_w = -height % STRIDE, -width % STRIDE
    padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if min(height, width) > 1 else "edge")
    tensor = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        rebuilt = model(tensor)[0, :, :height, :width]
    return rebuilt.permute(1, 2, 0).numpy() * 255


class Reconstructor:
    """The `autoencoder` (or, `sharp`, `autoencoder-sharp`) pseudo-fake maker: (face, generator) -> face, like the
    makers in pseudo_fakes.MAKERS.

    It holds the weights file's path and loads the network on first use, so a DataLoader worker (fork or spawn)
    loads its own copy instead of receiving one."""

    def __init__(self, file: Path, sharp: bool = False) -> None:
        self.file, self.sharp = file, sharp
        self._model: FaceAutoencoder | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"file": self.file, "sharp": self.sharp, "_model": None}

    @property
    def model(self) -> FaceAutoencoder:
        if self._model is None:
            self._model = load_autoencoder(self.file)[0]
        return self._model

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        strength = rng.uniform(*STRENGTH)
        mixed = image + strength * (reconstruct(self.model, image) - image)
        made = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        return match_sharpness(made, image) if self.sharp else made


def reconstructors(file: Path, names: Iterable[str]) -> dict[str, Reconstructor]:
    """The maker of each named auto-encoder pseudo-fake (`autoencoder`, `autoencoder-sharp`) on the network in
    `file`."""
    return {name: Reconstructor(file, sharp=name == "autoencoder-sharp") for name in names}


class RandomCrops(Dataset):
    """Random square crops of the given images, as [0, 1] tensors (smaller images are resized up first), read at
    the (index, seed) keys of a seeded EpochSampler: the seed places the crop."""

    def __init__(self, paths: Sequence[Path], size: int, max_pixels: int) -> None:
        self.paths, self.size, self.max_pixels = list(paths), size, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        index, seed = key
        image = load_rgb(self.paths[index], max_pixels=self.max_pixels)
        if min(image.size) < self.size:
            scale = self.size / min(image.size)
            image = image.resize(
                (max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale)))
            )
        rng = np.random.default_rng(seed)
        left = int(rng.integers(image.width - self.size + 1))
        top = int(rng.integers(image.height - self.size + 1))
        crop = np.asarray(image.crop((left, top, left + self.size, top + self.size)))
        return torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255


def train_autoencoder(
    paths: Sequence[Path],
    *,
    size: int = 128,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 2e-3,
    width: int = 32,
    code: int = 64,
    seed: int = 0,
    workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[FaceAutoencoder, dict[str, Any]]:
    """An auto-encoder trained on `paths` (real faces only) with L1 loss, Adam and a cosine schedule, and a record
    of how (the metadata its file keeps)."""
    if not paths:
        raise ConfigError("autoencoder: no real faces to train it on")
    if size % STRIDE or size < STRIDE:
        raise ConfigError(f"autoencoder: crop size {size} must be a positive multiple of {STRIDE}")
    torch.manual_seed(seed)
    model = FaceAutoencoder(width, code)
    crops = RandomCrops(paths, size, max_pixels)
    sampler = EpochSampler(len(crops), shuffle=True, seed=seed, seeded=True)
    loader = DataLoader(crops, batch_size=batch_size, sampler=sampler, num_workers=workers)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(crops) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    started, losses = time.perf_counter(), []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        total, count = 0.0, 0
        for batch in loader:
            loss = (model(batch) - batch).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        losses.append(total / count)
        logger.info(
            "autoencoder: epoch %d/%d, L1 %.4f, %.0f s", epoch + 1, epochs, losses[-1], time.perf_counter() - started
        )
    model.eval()
    record = {
        "format": FORMAT,
        "width": width,
        "code": code,
        "trained_on": len(crops),
        "crop_size": size,
        "epochs": epochs,
        "seed": seed,
        "l1_per_epoch": [round(value, 5) for value in losses],
    }
    return model, record


def save_autoencoder(file: Path, model: FaceAutoencoder, record: dict[str, Any]) -> None:
    """Weights and record in one safetensors file, written atomically."""
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    header = {METADATA_KEY: json.dumps(record)}
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(file, lambda temporary: save_file(state, str(temporary), metadata=header))


def load_autoencoder(file: Path) -> tuple[FaceAutoencoder, dict[str, Any]]:
    """The network (in eval mode) and record stored in `file`; a clear error when it is not such a file."""
    if not file.is_file():
        raise CheckpointError(f"{file}: auto-encoder file not found")
    header, state = read_safetensors(file, "file")
    record = json.loads(header.get(METADATA_KEY, "{}"))
    if record.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a dfdetect auto-encoder (no {FORMAT} record in its header)")
    model = FaceAutoencoder(int(record["width"]), int(record["code"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"{file}: its weights do not fit the auto-encoder it describes ({error})") from None
    return model.eval(), record


def autoencoder_for(paths: Sequence[Path], file: Path, max_pixels: int, workers: int = 0) -> Path:
    """`file`, trained on `paths` and written first when it does not exist yet (then logged)."""
    if file.is_file():
        record = load_autoencoder(file)[1]
        logger.info("autoencoder: %s (trained on %d faces, L1 %s)", file, record["trained_on"], record["l1_per_epoch"])
        return file
    logger.info("autoencoder: training one on %d real faces, once, into %s", len(paths), file)
    model, record = train_autoencoder(paths, max_pixels=max_pixels, workers=workers)
    save_autoencoder(file, model, record)
    return file
