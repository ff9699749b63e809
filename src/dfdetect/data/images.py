"""Safe image decoding: size limits before decoding, EXIF orientation, every mode to 8-bit RGB."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from dfdetect.errors import ImageLoadError, ImageTooLargeError, UnsupportedImageError

RESAMPLING = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}
"""PIL resampling filter for each interpolation name a Preprocessing spec may carry."""

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP"})
DEFAULT_MAX_PIXELS = 40_000_000
"""Largest image accepted (width x height); a 6000x6000 photo passes, a decompression bomb does not."""

ImageSource = Path | str | bytes | BinaryIO


def _name_of(source: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, Path | str):
        return str(source)
    return "<upload>"


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF8")


def _has_image_signature(source: Path | str | BinaryIO) -> bool:
    """Whether the bytes start like a JPEG, PNG, BMP, GIF or WebP file (so a failure means corruption)."""
    if isinstance(source, Path | str):
        with open(source, "rb") as handle:
            head = handle.read(12)
    else:
        source.seek(0)
        head = source.read(12)
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def open_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Open an image lazily (header only) and check its format and pixel count; nothing is decoded yet."""
    label = _name_of(source, name)
    if isinstance(source, Path | str) and Path(source).stat().st_size == 0:
        raise ImageLoadError(label, "empty file (0 bytes)")
    if isinstance(source, bytes):
        if not source:
            raise ImageLoadError(label, "empty file (0 bytes)")
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit; ours is checked just below with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(label, f"decompression bomb rejected without decoding ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's UnidentifiedImageError is an OSError
        reason = f"not a readable image ({error.__class__.__name__}: {error})"
        if _has_image_signature(source):
            raise ImageLoadError(label, f"corrupt or truncated image: {reason}") from None
        raise UnsupportedImageError(label, reason) from None
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImageError(label, f"unsupported image format {image.format}; expected JPEG, PNG, WebP or BMP")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            label,
            f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}; not decoded",
        )
    if width < 1 or height < 1:
        raise ImageLoadError(label, f"invalid size {width}x{height}")
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode (grayscale, 16-bit, RGBA, palette, CMYK, ...) to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}:
        # Pillow's convert("L") clips 16/32-bit values instead of scaling them: scale by hand.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        if image.mode in {"I", "F"} and array.max() <= 255:
            peak = 255.0
        gray = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Decode an image fully into 8-bit RGB with its EXIF orientation applied."""
    label = _name_of(source, name)
    image = open_image(source, max_pixels=max_pixels, name=label)
    try:
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return to_rgb(image)
    except ImageLoadError:
        raise
    except Exception as error:
        raise ImageLoadError(label, f"cannot decode ({error.__class__.__name__}: {error})") from None


def check_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Return why `path` is not a usable image, or None when it decodes cleanly."""
    try:
        image = open_image(path, max_pixels=max_pixels)
        if image.format in {"JPEG", "MPO"}:
            # Decoding at 1/8 scale still reads every entropy-coded byte, so truncation is caught, 5-10x faster.
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    except ImageLoadError as error:
        return error.reason
    except OSError as error:
        return f"cannot read ({error.__class__.__name__}: {error})"
    except Exception as error:
        return f"cannot decode ({error.__class__.__name__}: {error})"
    return None
