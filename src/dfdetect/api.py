"""The Python API: what the command line does, from Python, with typed results.

    >>> import numpy as np
    >>> import dfdetect
    >>> detector = dfdetect.load(runtime="torch")       # the detector that ships with dfdetect
    >>> detector.name
    'dfdc-lite0-ens 3.1.0'
    >>> face = np.full((224, 224, 3), 128, dtype=np.uint8)   # a face crop: a path, a PIL image or an RGB array
    >>> [prediction] = detector.predict(face)
    >>> prediction.label in ("real", "fake"), 0.0 <= prediction.p_fake <= 1.0
    (True, True)

`load` takes a shipped detector's name, a run folder, a checkpoint or an exported .onnx file; `train`,
`evaluate` take the same configuration and folders as `dfdetect train` and `dfdetect evaluate`. Importing
dfdetect stays light: torch is imported when a model is first needed, and an .onnx model never needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dfdetect.calibration import ThresholdChoice
from dfdetect.runtime.base import BasePredictor, Prediction

if TYPE_CHECKING:
    from dfdetect.config import TrainConfig
    from dfdetect.engine.trainer import FitResult
    from dfdetect.evaluation import Evaluation

ImageInput = str | Path | Image.Image | np.ndarray
"""A path, a PIL image, or an H x W x 3 uint8 RGB array."""


@dataclass
class Explanation:
    """A Grad-CAM explanation of one image: the heatmap in [0, 1] at the image's size, and the overlay."""

    prediction: Prediction
    heatmap: np.ndarray
    overlay: Image.Image = field(repr=False)


class Detector:
    """A loaded detector: score images, explain one, export to ONNX. Made by `dfdetect.load`."""

    def __init__(self, predictor: BasePredictor, source: Path) -> None:
        self.predictor = predictor
        self.source = source

    @property
    def name(self) -> str:
        """`name version` for a shipped detector, else the architecture."""
        return self.predictor.model_label

    @property
    def threshold(self) -> float:
        return self.predictor.threshold

    def info(self) -> dict[str, Any]:
        """Name, version, runtime, preprocessing and metrics (what GET /v1/model answers)."""
        return self.predictor.describe()

    def predict(
        self, images: ImageInput | Sequence[ImageInput], batch_size: int = 32, crop_face: str = "auto"
    ) -> list[Prediction]:
        """One Prediction per input, in order. A path that cannot be read gets a Prediction with `error` set.

        `crop_face` as in `dfdetect predict --crop-face`: `auto` cuts a photo that shows much more than a face to
        its faces (the most fake decides) and scores a face crop as it is; `always` cuts every image (a path
        without a face gets an error; an in-memory image without one is scored whole); `never` scores as is.
        """
        from dfdetect.photos import predict_photos, score_framed

        items = [images] if isinstance(images, str | Path | Image.Image | np.ndarray) else list(images)
        results: list[Prediction | None] = [None] * len(items)
        paths = [(index, Path(item)) for index, item in enumerate(items) if isinstance(item, str | Path)]
        if crop_face == "never":
            scored = self.predictor.predict_paths([path for _, path in paths], batch_size)
        else:
            photos = predict_photos(self.predictor, [path for _, path in paths], mode=crop_face, batch_size=batch_size)
            scored = [as_prediction(photo.row) for photo in photos]
        for (index, _), result in zip(paths, scored, strict=True):
            results[index] = result
        arrays = [(index, as_image(item)) for index, item in enumerate(items) if results[index] is None]
        for start in range(0, len(arrays), batch_size):
            chunk = arrays[start : start + batch_size]
            for (index, _), framed in zip(
                chunk, score_framed(self.predictor, [i for _, i in chunk], crop_face), strict=True
            ):
                results[index] = self.predictor.prediction(
                    f"<image {index}>", framed.verdict, framed.decisive_noise, framed.decisive_side
                )
        return [result for result in results if result is not None]

    def explain(self, image: ImageInput) -> Explanation:
        """Grad-CAM for one image (PyTorch checkpoints and shipped detectors; not exported .onnx files)."""
        from dfdetect.data.images import load_rgb
        from dfdetect.explain import gradcam_heatmaps, overlay
        from dfdetect.runtime.torch_backend import TorchPredictor

        if not isinstance(self.predictor, TorchPredictor):
            raise TypeError(f"{self.source}: Grad-CAM needs the PyTorch model; load a checkpoint, not an .onnx file")
        name = str(image) if isinstance(image, str | Path) else "<image>"
        picture = load_rgb(Path(image)) if isinstance(image, str | Path) else as_image(image)
        heatmaps, p_real = gradcam_heatmaps(self.predictor, [picture])
        prediction = self.predictor.prediction(
            name, float(p_real[0]), self.predictor.input_noise(picture), min(picture.size)
        )
        return Explanation(prediction, heatmaps[0], overlay(picture, heatmaps[0]))

    def export(self, path: str | Path, opset: int = 17) -> Path:
        """Write the detector as ONNX (metadata included); returns the path."""
        from dfdetect.runtime.export import export_onnx

        if self.source.suffix == ".onnx":
            raise TypeError(f"{self.source} is already an ONNX model")
        return export_onnx(self.source, Path(path), opset=opset)

    def __repr__(self) -> str:
        return f"Detector({self.name!r}, runtime={self.predictor.runtime!r}, threshold={self.threshold})"


def as_prediction(row: dict[str, Any]) -> Prediction:
    """A Prediction from a photo's row (its face columns dropped)."""
    return Prediction(**{key: row[key] for key in Prediction.__dataclass_fields__})


def as_image(item: ImageInput) -> Image.Image:
    """A PIL RGB image from a PIL image or an H x W x 3 uint8 array."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 RGB array, got shape {item.shape} and dtype {item.dtype}")
        return Image.fromarray(item)
    raise TypeError(f"expected a path, a PIL image or an RGB array, got {type(item).__name__}")


def load(
    model: str | Path | None = None,
    runtime: str = "auto",
    device: str = "auto",
    threshold: ThresholdChoice = None,
    noise_caution: float | None = None,
    small_caution: int | None = None,
) -> Detector:
    """A detector from a shipped detector's name (default: the shipped default), a run folder, a checkpoint
    or an exported .onnx file; `runtime` as in `dfdetect predict --runtime`; `threshold` a number or the name of
    a threshold policy stored with the model ("eer", "cost:2", ...; default: the model's own); `noise_caution` and
    `small_caution` as in its `--noise-caution` and `--small-caution` (defaults: dfdetect.quality.NOISE_CAUTION
    and SMALL_CAUTION; 0 turns a caution off)."""
    from dfdetect.pretrained import default_detector_path
    from dfdetect.runtime.factory import load_predictor

    source = Path(model) if model is not None else default_detector_path()
    predictor = load_predictor(
        source,
        runtime=runtime,
        device=device,
        threshold=threshold,
        noise_caution=noise_caution,
        small_caution=small_caution,
    )
    return Detector(predictor, source)


def train(
    config: TrainConfig | str | Path | dict[str, Any] | None = None, recipe: str | None = None, **overrides: Any
) -> FitResult:
    """Train like `dfdetect train`: a TrainConfig, a YAML file or a dict of keys (with `recipe` under it and
    `overrides` over it, e.g. `data=`, `out=`, `epochs=`); `resume=True` continues the run in `out`."""
    from dfdetect.config import TrainConfig, build_config, load_config
    from dfdetect.engine.trainer import fit
    from dfdetect.recipes import read_recipe

    resume = bool(overrides.pop("resume", False))
    base = read_recipe(recipe)
    if isinstance(config, TrainConfig):
        resolved = build_config(base, config.to_dict(), overrides)
    elif isinstance(config, dict):
        resolved = build_config(base, config, overrides)
    else:
        resolved = load_config(Path(config) if config is not None else None, overrides, base=base)
    return fit(resolved, resume=resume)


def evaluate(
    model: str | Path,
    data: str | Path,
    split: str = "Test",
    threshold: ThresholdChoice = None,
    device: str = "auto",
    workers: int = -1,
) -> Evaluation:
    """Score a split (or a folder holding Real/Fake) and compute every metric; see `Evaluation`."""
    from dfdetect.evaluation import score_split
    from dfdetect.runtime.torch_backend import TorchPredictor

    predictor = TorchPredictor.from_checkpoint(Path(model), device=device, threshold=threshold)
    return score_split(predictor, Path(data), split, workers=workers, threshold=threshold)
