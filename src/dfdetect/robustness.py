"""Robustness sweep: score a labelled set under perturbations at several levels (`dfdetect robustness`).

Each perturbation takes an RGB uint8 array and returns one of the same size; it runs on the decoded image,
before the model's own preprocessing, and nothing is written to disk. Random ones draw from a generator seeded
by (seed, perturbation, level, image), so a sweep is the same every time.

Two named sets:
- `basic`: real JPEG re-encoding (quality 95, 75, 50, 30), downscale-then-upscale (x0.75, 0.5, 0.25),
  Gaussian blur (sigma 1, 2, 3) and additive Gaussian noise (sigma 5, 10, 20 grey levels).
- `deeperforensics`: DeeperForensics-1.0's seven distortions (Jiang et al., CVPR 2020) at its five levels with
  its published parameters: colour saturation (CS), colour contrast (CC), local block-wise (BW), white Gaussian
  noise in YCbCr (GNC), Gaussian blur (GB), JPEG-like pixelation (JPEG) and H.264 video compression (VC, by the
  crf of libx264 in the FFmpeg that PyAV's wheel carries; the frame is encoded as a one-frame video). One
  adaptation: DeeperForensics places param x (short side // 256) grey 8x8 blocks, none below 256 px; here the
  count is param x short side / 256, rounded, at least one, so 224-px face crops are distorted too.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFilter

from dfdetect.calibration import ThresholdChoice
from dfdetect.errors import ConfigError

logger = logging.getLogger(__name__)

Apply = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Perturbation:
    """A named perturbation, its parameter at each level (mildest first) and what the parameter means."""

    name: str
    levels: tuple[Any, ...]
    parameter: str
    apply: Apply


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """The image as a baseline JPEG file at `quality` (Pillow's libjpeg)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def jpeg(image: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """Re-encode as JPEG at `quality` and decode again."""
    with Image.open(io.BytesIO(jpeg_bytes(image, quality))) as decoded:
        return np.asarray(decoded.convert("RGB"))


def downscale(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Resize to `factor` of the size (bicubic, antialiased) and back up to the original size."""
    picture = Image.fromarray(image)
    small = picture.resize(
        (max(1, round(picture.width * factor)), max(1, round(picture.height * factor))), Image.Resampling.BICUBIC
    )
    return np.asarray(small.resize(picture.size, Image.Resampling.BICUBIC))


def blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur with standard deviation `sigma` pixels."""
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=sigma)))


def noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise of standard deviation `sigma` grey levels to every channel."""
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _to_ycbcr(image: np.ndarray) -> np.ndarray:
    """RGB uint8 -> YCbCr in [0, 1] with video ranges (Y in [16, 235]/255, Cb/Cr in [16, 240]/255), as
    DeeperForensics' bgr2ycbcr."""
    ycrcb = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2YCrCb)[:, :, (0, 2, 1)]
    ycbcr = np.empty_like(ycrcb)
    ycbcr[:, :, 0] = (ycrcb[:, :, 0] * (235 - 16) + 16) / 255.0
    ycbcr[:, :, 1:] = (ycrcb[:, :, 1:] * (240 - 16) + 16) / 255.0
    return ycbcr


def _from_ycbcr(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of _to_ycbcr, as float RGB in [0, 255]."""
    ycrcb = np.empty_like(ycbcr, dtype=np.float32)
    ycrcb[:, :, 0] = (ycbcr[:, :, 0] * 255.0 - 16) / (235 - 16)
    ycrcb[:, :, 1:] = (ycbcr[:, :, 1:] * 255.0 - 16) / (240 - 16)
    return cv2.cvtColor(ycrcb[:, :, (0, 2, 1)].astype(np.float32), cv2.COLOR_YCrCb2RGB) * 255.0


def df_color_saturation(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """CS: scale the chroma (Cb, Cr) around grey by `factor` (0 leaves a grey image)."""
    ycbcr = _to_ycbcr(image)
    ycbcr[:, :, 1:] = 0.5 + (ycbcr[:, :, 1:] - 0.5) * factor
    return np.clip(_from_ycbcr(ycbcr), 0, 255).astype(np.uint8)


def df_color_contrast(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """CC: multiply every pixel by `factor`."""
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def df_block_wise(image: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """BW: grey (128) 8x8 blocks at random places, `count` per 256 pixels of the short side."""
    out = image.copy()
    width = 8
    height_px, width_px = image.shape[:2]
    blocks = max(1, round(count * min(height_px, width_px) / 256))
    for _ in range(blocks):
        top = int(rng.integers(0, max(1, height_px - width)))
        left = int(rng.integers(0, max(1, width_px - width)))
        out[top : top + width, left : left + width] = 128
    return out


def df_gaussian_noise_color(image: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """GNC: white Gaussian noise of `variance` added to Y, Cb and Cr (in [0, 1] units)."""
    ycbcr = _to_ycbcr(image) + math.sqrt(variance) * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(_from_ycbcr(ycbcr), 0, 255).astype(np.uint8)


def df_gaussian_blur(image: np.ndarray, kernel: int, rng: np.random.Generator) -> np.ndarray:
    """GB: Gaussian blur with a `kernel` x `kernel` window and sigma = kernel / 6."""
    return cv2.GaussianBlur(image, (kernel, kernel), kernel / 6.0)


def df_jpeg(image: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG (DeeperForensics' name; a pixelation): shrink by `factor` and enlarge back, bilinear."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // factor), max(1, height // factor)))
    return cv2.resize(small, (width, height))


def df_video_compression(image: np.ndarray, crf: int, rng: np.random.Generator) -> np.ndarray:
    """VC: encode as a one-frame H.264 video (libx264, `crf`, yuv420p) with PyAV's FFmpeg and decode it."""
    import av

    height, width = image.shape[:2]
    padded = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")  # yuv420p wants even sizes
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = padded.shape[1], padded.shape[0], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r") as reader:
        frame = next(reader.decode(video=0)).to_ndarray(format="rgb24")
    return np.ascontiguousarray(frame[:height, :width])


BASIC = (
    Perturbation("jpeg", (95, 75, 50, 30), "quality", jpeg),
    Perturbation("downscale", (0.75, 0.5, 0.25), "scale", downscale),
    Perturbation("blur", (1.0, 2.0, 3.0), "sigma (px)", blur),
    Perturbation("noise", (5.0, 10.0, 20.0), "sigma (grey levels)", noise),
)
DEEPERFORENSICS = (
    Perturbation("df-cs", (0.4, 0.3, 0.2, 0.1, 0.0), "chroma factor", df_color_saturation),
    Perturbation("df-cc", (0.85, 0.725, 0.6, 0.475, 0.35), "pixel factor", df_color_contrast),
    Perturbation("df-bw", (16, 32, 48, 64, 80), "blocks per 256 px", df_block_wise),
    Perturbation("df-gnc", (0.001, 0.002, 0.005, 0.01, 0.05), "noise variance", df_gaussian_noise_color),
    Perturbation("df-gb", (7, 9, 13, 17, 21), "kernel (px)", df_gaussian_blur),
    Perturbation("df-jpeg", (2, 3, 4, 5, 6), "pixelation factor", df_jpeg),
    Perturbation("df-vc", (30, 32, 35, 38, 40), "x264 crf", df_video_compression),
)
PERTURBATIONS = {perturbation.name: perturbation for perturbation in (*BASIC, *DEEPERFORENSICS)}
SETS = {"basic": BASIC, "deeperforensics": DEEPERFORENSICS, "all": (*BASIC, *DEEPERFORENSICS)}


def select(names: str, levels: Sequence[str] = ()) -> list[Perturbation]:
    """`basic`, `deeperforensics`, `all`, or comma-separated perturbation names (sets may be mixed in); each of
    `levels`, `NAME=V1,V2,...`, replaces the levels of a chosen perturbation (`noise=1,2,3`)."""
    chosen: dict[str, Perturbation] = {}
    for name in (part.strip() for part in names.split(",") if part.strip()):
        if name in SETS:
            chosen.update((p.name, p) for p in SETS[name])
        elif name in PERTURBATIONS:
            chosen[name] = PERTURBATIONS[name]
        else:
            known = ", ".join([*SETS, *PERTURBATIONS])
            raise ConfigError(f"unknown perturbation {name!r}; known: {known}")
    for text in levels:
        name, values = parse_levels(text)
        if name not in chosen:
            among = ", ".join(chosen)
            raise ConfigError(f"--levels {text!r}: {name!r} is not among the chosen perturbations ({among})")
        chosen[name] = replace(chosen[name], levels=values)
    return list(chosen.values())


def parse_levels(text: str) -> tuple[str, tuple[Any, ...]]:
    """`NAME=V1,V2,...` -> (NAME, levels), each level of the type of the perturbation's own (int or float)."""
    name, _, values = (part.strip() for part in text.partition("="))
    if name not in PERTURBATIONS:
        raise ConfigError(f"--levels {text!r}: unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}")
    kind = type(PERTURBATIONS[name].levels[0])
    try:
        levels = tuple(kind(value) for value in values.split(","))
    except ValueError:
        levels = ()
    if not levels or not all(math.isfinite(level) and level >= 0 for level in levels):
        example = ",".join(str(level) for level in PERTURBATIONS[name].levels)
        raise ConfigError(
            f"--levels {text!r}: expected {name}=V1,V2,... with {kind.__name__} values >= 0, e.g. {name}={example}"
        )
    return name, levels


def image_rng(seed: int, perturbation: int, level: int, image: int) -> np.random.Generator:
    """The generator one image draws from under one perturbation level: fixed by its four indices."""
    return np.random.default_rng([seed, perturbation, level, image])


def level_metrics(labels: np.ndarray, p_real: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUC, accuracy, AP and mean p_fake of one level (AUC and AP need both classes)."""
    from dfdetect.metrics import classification_metrics

    metrics = classification_metrics(labels, p_real, threshold)
    return {
        "auc": metrics["auc"],
        "accuracy": metrics["accuracy"],
        "average_precision": metrics["average_precision"],
        "mean_p_fake": float(np.mean(1.0 - p_real)),
    }


def perturb(
    perturbation: Perturbation, parameter: Any, seed: int, p_index: int, l_index: int, index: int, image: np.ndarray
) -> np.ndarray:
    """One image under one perturbation level, with its own seeded generator."""
    return perturbation.apply(image, parameter, image_rng(seed, p_index, l_index, index))


def sweep(
    score: Callable[[list[Image.Image]], np.ndarray],
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    perturbations: Sequence[Perturbation],
    threshold: float,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Metrics on the clean images and at every level of every perturbation; `score` maps PIL images to P(Real)."""

    def score_all(transform: Callable[[int, np.ndarray], np.ndarray] | None) -> np.ndarray:
        scores = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            changed = [transform(start + i, image) if transform else image for i, image in enumerate(batch)]
            scores.append(score([Image.fromarray(image) for image in changed]))
        return np.concatenate(scores)

    results: dict[str, Any] = {"clean": level_metrics(labels, score_all(None), threshold)}
    for p_index, perturbation in enumerate(perturbations):
        rows = []
        for l_index, parameter in enumerate(perturbation.levels):
            transform = functools.partial(perturb, perturbation, parameter, seed, p_index, l_index)
            metrics = level_metrics(labels, score_all(transform), threshold)
            rows.append({"level": l_index + 1, "parameter": parameter, **metrics})
            logger.info(
                "%s level %d (%s %s): %s", perturbation.name, l_index + 1, perturbation.parameter, parameter, metrics
            )
        results[perturbation.name] = {"parameter": perturbation.parameter, "levels": rows}
    return results


def write_report(results: dict[str, Any], out: Path, title: str) -> list[Path]:
    """robustness.json, robustness.md (one table) and robustness-<name>.png per perturbation in `out`."""
    from dfdetect.metrics import format_value
    from dfdetect.reporting.plots import plot_robustness, save_figure
    from dfdetect.reporting.tables import LABEL_NOTE, markdown_table

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "robustness.json"]
    written[0].write_text(json.dumps(results, indent=2), encoding="utf-8")
    clean = results["clean"]
    levels_of = {name: entry for name, entry in results.items() if name not in ("clean", "_meta")}
    rows = [["clean", "", "", *(clean[key] for key in ("auc", "accuracy", "average_precision", "mean_p_fake"))]]
    for name, entry in levels_of.items():
        for level in entry["levels"]:
            rows.append(
                [
                    name,
                    level["level"],
                    f"{entry['parameter']} {format_value(level['parameter'])}",
                    *(level[key] for key in ("auc", "accuracy", "average_precision", "mean_p_fake")),
                ]
            )
        figure = plot_robustness(
            [level["level"] for level in entry["levels"]],
            {key: [level[key] for level in entry["levels"]] for key in ("auc", "accuracy", "mean_p_fake")},
            {key: clean[key] for key in ("auc", "accuracy", "mean_p_fake")},
            f"{title}\n{name} ({entry['parameter']})",
        )
        written.append(save_figure(figure, out / f"robustness-{name}.png"))
    table = markdown_table(["perturbation", "level", "parameter", "AUC", "accuracy", "AP", "mean p_fake"], rows)
    (out / "robustness.md").write_text(f"# Robustness: {title}\n\n{table}\n\n{LABEL_NOTE}\n", encoding="utf-8")
    written.insert(1, out / "robustness.md")
    return written


def run_robustness(
    model: Path,
    data: Path,
    out: Path,
    split: str = "Test",
    perturbations: str = "basic,deeperforensics",
    seed: int = 0,
    runtime: str = "auto",
    device: str = "auto",
    threshold: ThresholdChoice = None,
    levels: Sequence[str] = (),
) -> tuple[dict[str, Any], list[Path]]:
    """Load the model and the labelled split (one class is enough), sweep, and write the report into `out`."""
    from dfdetect.data.discovery import load_split
    from dfdetect.data.images import load_rgb
    from dfdetect.runtime import load_predictor

    chosen = select(perturbations, levels)
    predictor = load_predictor(model, runtime=runtime, device=device, threshold=threshold)
    samples, bad = load_split(data, split, one_class=True)
    images = [np.asarray(load_rgb(sample.path)) for sample in samples]
    labels = np.array([sample.label for sample in samples])
    logger.info("robustness: %d images (%d skipped), %d perturbations", len(images), len(bad), len(chosen))
    results = sweep(predictor.predict_images, images, labels, chosen, predictor.threshold, seed)
    results["_meta"] = {
        "model": predictor.model_label,
        "data": f"{data}/{split}",
        "seed": seed,
        "threshold": predictor.threshold,
        "calibrated": predictor.is_calibrated,
        "runtime": predictor.runtime,
    }
    return results, write_report(results, out, f"{predictor.model_label} on {data.name}/{split}")
