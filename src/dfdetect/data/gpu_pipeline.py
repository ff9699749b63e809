"""The CUDA input path: decode every image once into a uint8 tensor, then augment whole batches on the device.

On an H200 the PIL + DataLoader path fed about 550 images/s while the model step alone ran 2,000-2,300
(docs/results.md, section 4); reading a pre-decoded uint8 cache and copying it to the GPU ran at 24,000/s and
batched GPU JPEG decoding at 12,000/s. So for CUDA, when the decoded split fits the memory budget, training
reads from this cache and `BatchAugment` applies the configured augmentations to the batch on the GPU:
one affine warp per image (random resized crop, rotation, horizontal flip), colour jitter (brightness,
contrast, saturation; hue is left to the CPU path), Gaussian blur, Gaussian noise and JPEG re-compression.
Everything here also runs on the CPU, which is how it is tested.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dfdetect.conventions import epoch_seed
from dfdetect.data.dataset import EpochSampler
from dfdetect.data.discovery import Sample
from dfdetect.data.images import DEFAULT_MAX_PIXELS, RESAMPLING, load_rgb
from dfdetect.preprocessing import AugmentConfig, Preprocessing

logger = logging.getLogger(__name__)


def cache_bytes(count: int, size: int) -> int:
    """Memory a decoded cache of `count` images at `size` x `size` takes."""
    return count * 3 * size * size


class DecodedImages:
    """Every sample decoded once, resized to the model's input size, as one uint8 tensor (N, 3, S, S)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        preprocessing: Preprocessing,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        workers: int | None = None,
    ) -> None:
        size = preprocessing.input_size
        resample = RESAMPLING.get(preprocessing.interpolation, Image.Resampling.BILINEAR)
        self.images = torch.empty((len(samples), 3, size, size), dtype=torch.uint8)
        self.labels = torch.tensor([float(sample.label) for sample in samples])

        def decode(index: int) -> None:
            image = load_rgb(samples[index].path, max_pixels=max_pixels).resize((size, size), resample)
            self.images[index] = torch.from_numpy(np.array(image).transpose(2, 0, 1))

        with ThreadPoolExecutor(max_workers=workers or min(16, os.cpu_count() or 1)) as pool:
            list(pool.map(decode, range(len(samples))))

    def __len__(self) -> int:
        return len(self.labels)

    def to_device_if_it_fits(self, device: torch.device, share: float = 0.25) -> None:
        """Keep the cache in GPU memory when it takes under `share` of it: batches are then indexed in place."""
        if device.type != "cuda":
            return
        total = torch.cuda.get_device_properties(device).total_memory
        if self.images.numel() <= share * total:
            self.images, self.labels = self.images.to(device), self.labels.to(device)
        else:  # stays in RAM: pinned pages copy to the GPU asynchronously
            self.images = self.images.pin_memory()


def luma(x: torch.Tensor) -> torch.Tensor:
    """Grey level (ITU-R BT.601 weights, as torchvision's rgb_to_grayscale) of (N, 3, H, W) images: (N, 1, H, W)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


class BatchAugment:
    """AugmentConfig applied to a uint8 batch on its own device; returns normalised float images."""

    def __init__(self, augment: AugmentConfig | None, preprocessing: Preprocessing) -> None:
        self.augment = augment
        self.mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float() / 255.0
        a = self.augment
        if a is not None:
            x = self.geometry(x, a, generator)
            x = self.color(x, a, generator)
            x = self.blur(x, a, generator)
            x = self.noise(x, a, generator)
            x = self.jpeg(x, a, generator)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    @staticmethod
    def _uniform(n: int, low: float, high: float, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, device=x.device, generator=generator)

    def _chosen(self, p: float, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return torch.rand(x.shape[0], device=x.device, generator=generator) < p

    def geometry(self, x: torch.Tensor, a: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
        """Crop (zoom + shift), rotation and flip as one affine warp per image."""
        n = x.shape[0]
        ones = torch.ones(n, device=x.device)
        crop = self._chosen(a.resized_crop_p, x, generator)
        scale = torch.where(crop, self._uniform(n, a.resized_crop_min_scale, 1.0, x, generator), ones)
        zoom = scale.sqrt()  # side of the crop relative to the image
        shift_x = (1 - zoom) * self._uniform(n, -1, 1, x, generator)
        shift_y = (1 - zoom) * self._uniform(n, -1, 1, x, generator)
        rotate = self._chosen(a.rotation_p, x, generator)
        angle = (
            torch.where(
                rotate,
                self._uniform(n, -a.rotation_degrees, a.rotation_degrees, x, generator),
                torch.zeros(n, device=x.device),
            )
            * math.pi
            / 180
        )
        flip = torch.where(self._chosen(a.hflip_p, x, generator), -ones, ones)
        if not (crop.any() or rotate.any() or (flip < 0).any()):
            return x
        cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, shift_x], 1), torch.stack([sin * flip, cos, shift_y], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def color(self, x: torch.Tensor, a: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
        if a.color_jitter_p <= 0 or a.color_jitter_strength <= 0:
            return x
        n, s = x.shape[0], a.color_jitter_strength
        chosen = self._chosen(a.color_jitter_p, x, generator).view(n, 1, 1, 1)
        brightness, contrast, saturation = (
            self._uniform(n, 1 - s, 1 + s, x, generator).view(n, 1, 1, 1) for _ in range(3)
        )
        jittered = x * brightness
        mean_gray = luma(jittered).mean(dim=(2, 3), keepdim=True)
        jittered = (jittered - mean_gray) * contrast + mean_gray
        gray = luma(jittered)
        jittered = (gray + (jittered - gray) * saturation).clamp(0, 1)
        return torch.where(chosen, jittered, x)

    def blur(self, x: torch.Tensor, a: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
        if a.blur_p <= 0:
            return x
        chosen = self._chosen(a.blur_p, x, generator)
        if not chosen.any():
            return x
        picked = x[chosen]
        n, _, height, width = picked.shape
        radius = min(math.ceil(3 * a.blur_sigma_max), (min(height, width) - 1) // 2)
        sigma = self._uniform(n, 0.1, a.blur_sigma_max, x, generator).view(n, 1)
        offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype).view(1, -1)
        kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (n*3, K)
        planes = picked.reshape(1, n * 3, height, width)
        planes = F.conv2d(
            F.pad(planes, (radius, radius, 0, 0), mode="reflect"), kernel.view(n * 3, 1, 1, -1), groups=n * 3
        )
        planes = F.conv2d(
            F.pad(planes, (0, 0, radius, radius), mode="reflect"), kernel.view(n * 3, 1, -1, 1), groups=n * 3
        )
        out = x.clone()
        out[chosen] = planes.view(n, 3, height, width)
        return out

    def noise(self, x: torch.Tensor, a: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
        """Gaussian noise of a random sigma in [0, noise_sigma_max] grey levels on the chosen images."""
        if a.noise_p <= 0:
            return x
        n = x.shape[0]
        chosen = self._chosen(a.noise_p, x, generator).view(n, 1, 1, 1)
        sigma = self._uniform(n, 0.0, a.noise_sigma_max / 255.0, x, generator).view(n, 1, 1, 1)
        noise = torch.randn(x.shape, device=x.device, generator=generator, dtype=x.dtype)
        return torch.where(chosen, (x + sigma * noise).clamp(0, 1), x)

    def jpeg(self, x: torch.Tensor, a: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
        """Re-compress the chosen images at one random quality per batch (batched nvJPEG on CUDA)."""
        if a.jpeg_p <= 0:
            return x
        chosen = torch.nonzero(self._chosen(a.jpeg_p, x, generator)).flatten()
        if len(chosen) == 0:
            return x
        from torchvision.io import decode_jpeg, encode_jpeg

        quality = int(
            torch.randint(a.jpeg_quality_min, a.jpeg_quality_max + 1, (1,), device=x.device, generator=generator).item()
        )
        as_bytes = list((x[chosen] * 255).round().clamp(0, 255).to(torch.uint8).unbind(0))
        try:
            encoded = encode_jpeg(as_bytes, quality=quality)
            decoded = decode_jpeg([data.cpu() for data in encoded], device=x.device)
        except RuntimeError as error:  # a torchvision build without nvJPEG: do it on the CPU
            logger.debug("JPEG augmentation falls back to the CPU: %s", error)
            encoded = encode_jpeg([image.cpu() for image in as_bytes], quality=quality)
            decoded = [image.to(x.device) for image in decode_jpeg(encoded)]
        out = x.clone()
        out[chosen] = torch.stack(decoded).float() / 255.0
        return out


class CachedBatches:
    """Batches from a DecodedImages on `device`, in an EpochSampler's order, augmented on the device.

    Quacks like a DataLoader for the trainer: iterable of (images, labels), len, and `.sampler`.
    """

    def __init__(
        self, cache: DecodedImages, sampler: EpochSampler, batch_size: int, device: torch.device, augment: BatchAugment
    ) -> None:
        self.cache, self.sampler, self.batch_size, self.device, self.augment = (
            cache,
            sampler,
            batch_size,
            device,
            augment,
        )

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = [item[0] if isinstance(item, tuple) else item for item in self.sampler]
        generator = torch.Generator(device=self.device)
        generator.manual_seed(epoch_seed(self.sampler.seed, self.sampler.epoch))
        for start in range(0, len(order), self.batch_size):
            index = torch.tensor(order[start : start + self.batch_size], device=self.cache.images.device)
            images = self.cache.images[index].to(self.device, non_blocking=True)
            labels = self.cache.labels[index].to(self.device, non_blocking=True)
            yield self.augment(images, generator), labels
