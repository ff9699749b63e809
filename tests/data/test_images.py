import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfdetect.data.images import ImageLoadError, ImageTooLargeError, check_image, load_rgb, open_image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "mode",
    ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1", "RGB"],
)
def test_every_mode_becomes_8bit_rgb(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray((np.arange(600, dtype=np.uint16).reshape(20, 30) * 100).astype(np.uint16))
        assert image.mode == "I;16"
    else:
        image = base.convert(mode)
    fmt = "JPEG" if mode in {"CMYK"} else "PNG"
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, format=fmt)
    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    assert rgb.size == (30, 20)


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    red = np.asarray(load_rgb(path))[0, :, 0]
    assert red.tolist() == [0, 128, 255]


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    path = tmp_path / "clear.png"
    image.save(path)
    assert np.asarray(load_rgb(path))[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_rgb(path).size == (20, 40)


def test_decompression_bomb_is_rejected_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(30000, 30000))
    with pytest.raises(ImageTooLargeError) as error:
        open_image(path)
    assert "bomb.png" in str(error.value)
    assert check_image(path) is not None


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(path)
    with pytest.raises(ImageTooLargeError, match="20,000 pixels exceeds the limit of 10,000"):
        open_image(path, max_pixels=10_000)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (b"hello, I am a text file", "not a readable image"),
    ],
)
def test_bad_bytes_are_named(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    assert expected in (check_image(path) or "")
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        load_rgb(path)


def test_truncated_jpeg_is_caught_by_the_scan(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path = tmp_path / "truncated.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert "truncated" in (check_image(path) or "")


def test_uploaded_bytes_work_like_files() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, "PNG")
    assert load_rgb(buffer.getvalue(), name="upload.png").size == (8, 8)
    with pytest.raises(ImageLoadError, match="upload.bin"):
        load_rgb(b"not an image", name="upload.bin")


def test_unsupported_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    Image.new("RGB", (8, 8)).save(path, "GIF")
    assert "unsupported image format GIF" in (check_image(path) or "")
