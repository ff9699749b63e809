"""A torch Dataset over pre-scanned samples, the stratified training fraction, and loaders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, Sampler

from dfdetect.conventions import epoch_seed, sample_seed
from dfdetect.data.discovery import Sample
from dfdetect.data.images import DEFAULT_MAX_PIXELS, load_rgb
from dfdetect.data.pseudo_fakes import Maker, make_pseudo_fake
from dfdetect.data.sharpness import balance_sharpness

logger = logging.getLogger(__name__)

SHARPNESS_STREAM = 1
"""Second word of the seed of sharpness balancing's generator (the first is the sample's seed)."""


class FaceDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images from a list of samples as (normalised tensor, float label) pairs."""

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        pseudo_fakes: Sequence[str] = (),
        pseudo_fake_p: float = 0.5,
        landmarks: Mapping[Path, np.ndarray | None] | None = None,
        crops: Mapping[Path, tuple[int, int, int, int] | None] | None = None,
        balance_sharpness_p: float = 0.0,
        trained: Mapping[str, Maker] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.max_pixels = max_pixels
        self.pseudo_fakes, self.pseudo_fake_p = list(pseudo_fakes), pseudo_fake_p
        self.landmarks = landmarks or {}  # found once before training (data/landmarks.py); else MTCNN per image
        self.crops = crops or {}  # face boxes found once (faces.FaceCropper); an image without one is used whole
        self.balance_sharpness_p = balance_sharpness_p  # class-conditional, so here and not in the transform
        self.trained = trained  # the auto-encoder makers by name (data/autoencoder.py), trained before training

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.samples[index]
        image = load_rgb(sample.path, max_pixels=self.max_pixels)
        box = self.crops.get(sample.path)
        if box is not None:
            image = image.crop(box)
        if seed is None:
            return self.transform(image), torch.tensor(float(sample.label))
        label = sample.label
        if self.pseudo_fakes and label == 1:
            generator = np.random.default_rng(seed)  # the same pseudo-fake in any worker, after a resume
            if generator.random() < self.pseudo_fake_p:
                image = Image.fromarray(self.pseudo_fake(np.asarray(image), sample.path, generator))
                label = 0
        if self.balance_sharpness_p > 0:  # its own stream, so runs without it keep their pseudo-fakes
            generator = np.random.default_rng([seed, SHARPNESS_STREAM])
            image = Image.fromarray(balance_sharpness(np.asarray(image), label, self.balance_sharpness_p, generator))
        # Augmentation drawn from a per-sample seed: the same in any worker, after a resume, on any rank.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), torch.tensor(float(label))

    def pseudo_fake(self, image: np.ndarray, path: Path, generator: np.random.Generator) -> np.ndarray:
        if path in self.landmarks:
            found = self.landmarks[path]
            return make_pseudo_fake(image, self.pseudo_fakes, generator, lambda _: found, self.trained)
        return make_pseudo_fake(image, self.pseudo_fakes, generator, trained=self.trained)

    @property
    def labels(self) -> list[int]:
        return [sample.label for sample in self.samples]


class EpochSampler(Sampler):
    """Indices in an order fixed by (seed, epoch), sharded across ranks: rank r takes items r, r + W, ...

    With `seeded`, each index comes with a per-sample augmentation seed derived from (seed, epoch, index).
    Training shards are padded by wrap-around to equal length (so every rank runs the same number of steps);
    evaluation shards are not padded, so no image is scored twice.
    """

    def __init__(
        self,
        size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        seeded: bool = False,
        pad: bool = True,
    ) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size, self.seeded, self.pad = rank, world_size, seeded, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        if not self.shuffle:
            order = list(range(self.size))
        else:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        if self.pad and self.world_size > 1 and self.size % self.world_size:
            order += order[: self.world_size - self.size % self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[Any]:
        for index in self._order():
            if self.seeded:
                yield index, sample_seed(self.seed, self.epoch, index)
            else:
                yield index

    def __len__(self) -> int:
        return len(self._order())


def stratified_fraction(samples: Sequence[Sample], fraction: float, seed: int) -> list[Sample]:
    """A random subset of `fraction` of the samples with the class balance kept (the study searched on 10%)."""
    if fraction >= 1.0:
        return list(samples)
    labels = [sample.label for sample in samples]
    subset, _ = train_test_split(list(samples), train_size=fraction, stratify=labels, random_state=seed)
    return sorted(subset, key=lambda sample: (sample.label, str(sample.path)))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    sampler: Sampler | None = None,
    pin_memory: bool = False,
    persistent: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader with the settings that matter for throughput (workers, pinned memory, prefetch).

    `persistent` keeps worker processes alive across epochs (the sampler still reorders every epoch).
    The loader draws its workers' base seed from a generator of its own: from the process's global one, that
    draw would happen at every epoch without persistent workers but only at the first epoch with them (and
    again at the first epoch after a resume), shifting dropout and every other draw of the epochs after it.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=persistent and workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        drop_last=False,
        generator=torch.Generator().manual_seed(seed),
    )
