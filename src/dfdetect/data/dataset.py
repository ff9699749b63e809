"""A torch Dataset over pre-scanned samples, the stratified training fraction, and loaders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset

from dfdetect.data.discovery import Sample
from dfdetect.data.images import DEFAULT_MAX_PIXELS, load_rgb

logger = logging.getLogger(__name__)


class FaceDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images from a list of samples as (normalised tensor, float label) pairs."""

    def __init__(self, samples: Sequence[Sample], transform: Callable, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        image = load_rgb(sample.path, max_pixels=self.max_pixels)
        return self.transform(image), torch.tensor(float(sample.label))

    @property
    def labels(self) -> list[int]:
        return [sample.label for sample in self.samples]


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
    shuffle: bool,
    workers: int,
    pin_memory: bool = False,
    generator: torch.Generator | None = None,
    sampler: torch.utils.data.Sampler | None = None,
) -> DataLoader:
    """A DataLoader with the settings that matter for throughput (persistent workers, prefetch)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        generator=generator,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        drop_last=False,
    )
