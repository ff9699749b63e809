"""What every runtime shares (no torch here): results, path expansion, numpy preprocessing, batching with per-file
errors, and the key under which exported models carry dfdetect's metadata."""

from __future__ import annotations

import glob
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dfdetect.calibration import ThresholdChoice, apply_temperature, chosen_threshold, threshold_logit
from dfdetect.conventions import DEFAULT_THRESHOLD, METADATA_KEY
from dfdetect.data.images import DEFAULT_MAX_PIXELS, MEDIA_EXTENSIONS, RESAMPLING, load_rgb
from dfdetect.errors import DfdetectError
from dfdetect.preprocessing import Preprocessing
from dfdetect.pretrained import release_label
from dfdetect.quality import (
    NOISE_CAUTION,
    NOISY,
    SMALL,
    SMALL_CAUTION,
    Caution,
    caution_fields,
    noise_sigma,
    small_limit,
)

logger = logging.getLogger(__name__)

__all__ = ["METADATA_KEY", "BasePredictor", "Prediction", "expand_paths", "preprocess_numpy"]


def routed_name(entry: dict[str, Any]) -> str:
    """How a routed detector's branch (its metadata's `routed.primary` or `routed.fallback`) is named: its
    release, else the source it was built from."""
    return str(entry.get("release") or entry["source"])


@dataclass(frozen=True)
class Prediction:
    """One image's result: label is 'real' or 'fake'; error is set (and the scores None) when it failed; model
    names the detector that scored it (`name version` for a shipped one)."""

    path: str
    label: str | None
    p_fake: float | None
    p_real: float | None
    error: str | None = None
    model: str | None = None
    calibrated: bool | None = None
    """Whether p_fake / p_real are calibrated probabilities (temperature scaling on a held-out split)."""
    noise: float | None = None
    """Estimated noise of the scored image (or face) at the network's input size, grey levels (dfdetect.quality)."""
    caution: str | None = None
    """Why this score deserves less trust (a noisy or a small input), or None."""
    caution_codes: list[str] = field(default_factory=list)
    """The caution's reasons as codes, in its order: `small`, `noisy` (dfdetect.quality); empty without one."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expand_paths(arguments: Sequence[str]) -> list[Path]:
    """Files as given, folders searched recursively for images and videos (other files skipped, and logged),
    globs expanded; order kept, duplicates dropped."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            found += [p for p in files if p.suffix.lower() in MEDIA_EXTENSIONS]
            if skipped := [p.name for p in files if p.suffix.lower() not in MEDIA_EXTENSIONS]:
                kinds = ", ".join(sorted(MEDIA_EXTENSIONS))
                logger.info("%s: skipped %d file(s) that are not %s, e.g. %s", path, len(skipped), kinds, skipped[0])
        elif any(char in argument for char in "*?["):
            found += sorted(Path(p) for p in glob.glob(argument, recursive=True) if Path(p).is_file())
        else:
            found.append(path)  # a missing file becomes an error row, not a crash
    return list(dict.fromkeys(found))


def preprocess_numpy(image: Image.Image, preprocessing: Preprocessing) -> np.ndarray:
    """RGB PIL image -> normalised float32 (3, H, W) array, with Pillow only (the ONNX path has no torch)."""
    size = preprocessing.input_size
    resized = image.resize((size, size), RESAMPLING.get(preprocessing.interpolation, Image.Resampling.BILINEAR))
    pixels = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
    mean, std = np.asarray(preprocessing.mean, dtype=np.float32), np.asarray(preprocessing.std, dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


class BasePredictor(ABC):
    """Scores images with P(Real); subclasses say how (PyTorch, ONNX Runtime)."""

    preprocessing: Preprocessing
    metadata: dict[str, Any]
    threshold: float = DEFAULT_THRESHOLD
    temperature: float = 1.0
    runtime: str = ""
    threshold_policy: str = "0.5"
    supports_explain: bool = False
    noise_caution: float = NOISE_CAUTION
    """Scores of inputs with more estimated noise than this (grey levels) get a caution; 0 turns it off."""
    small_caution: int = SMALL_CAUTION
    """Scores of inputs with a shorter side under this (pixels; under the input size, if smaller) get a caution; 0
    turns it off. A calibration that stores its detector's own limit (`dfdetect calibrate --small-caution`) sets it."""

    @abstractmethod
    def score_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The model's own P(Real) for RGB PIL images, before calibration."""

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """P(Real) for RGB PIL images, calibrated when the model carries a temperature."""
        return self.calibrated_scores(self.score_images(images))

    def calibrated_scores(self, p_real: np.ndarray) -> np.ndarray:
        """The model's P(Real) after its temperature (from `dfdetect calibrate`; 1 = as the model gives it)."""
        return apply_temperature(p_real, self.temperature)

    @property
    def is_calibrated(self) -> bool:
        return "calibration" in self.metadata

    def use_stored_calibration(self, threshold: ThresholdChoice) -> None:
        """Take the temperature and the threshold `dfdetect calibrate` stored with the model; an explicit
        `threshold` (a number, or another stored policy's name) still wins, and without either the study's 0.5
        applies."""
        calibration = self.metadata.get("calibration") or {}
        self.temperature = float(calibration.get("temperature", 1.0))
        self.threshold, self.threshold_policy = chosen_threshold(calibration, threshold)
        stored_limit = calibration.get("small_caution")  # the detector's own, where it was measured
        self.small_caution = SMALL_CAUTION if stored_limit is None else int(stored_limit)

    @property
    def decision(self) -> str:
        """The rule the labels follow, in p_fake terms (real when P(Real) >= threshold), as predict's table and the
        web page say it."""
        return f"fake when p_fake > {1 - self.threshold:.3f} (threshold policy {self.threshold_policy})"

    @property
    def logit_threshold(self) -> float:
        """The threshold on the model's own logits: calibration divides them by the temperature before the sigmoid."""
        return threshold_logit(self.threshold) * self.temperature

    def label_of(self, p_real: float) -> str:
        return "real" if p_real >= self.threshold else "fake"

    def input_noise(self, image: Image.Image) -> float:
        """The image's estimated noise as the network sees it: at its input size, resized as it resizes."""
        resample = RESAMPLING.get(self.preprocessing.interpolation, Image.Resampling.BILINEAR)
        return noise_sigma(image, self.preprocessing.input_size, resample)

    def cautions_of(self, noise: float | None, side: int | None = None) -> list[Caution]:
        """Why a score deserves less trust, if at all: its shorter side (pixels, before the network's resize) under
        `small_caution` (`dfdetect.quality.small_limit`), its input's estimated noise above `noise_caution`, or
        both, in that order."""
        cautions = []
        limit = small_limit(self.small_caution, self.preprocessing.input_size)
        if side is not None and side < limit:
            text = (
                f"small input ({side} px on its shorter side < {limit} px): brought up to the network's "
                f"{self.preprocessing.input_size} px it carries little detail to read, so the score is less reliable"
            )
            cautions.append(Caution(SMALL, text))
        if noise is not None and self.noise_caution and noise > self.noise_caution:
            cautions.append(Caution(NOISY, self._noisy_caution(noise)))
        return cautions

    def _noisy_caution(self, noise: float) -> str:
        noisy = f"noisy input (estimated noise {noise:.1f} > {self.noise_caution:g} grey levels)"
        routing = self.noise_routing
        if routing and noise > routing["noise_limit"]:
            fallback = routing["noisy_model"]
            return f"{noisy}: scored by {fallback}, the network that holds against noise but knows fewer sources"
        return f"{noisy}: detectors read noise as a generator's trace, so the score may lean fake"

    def prediction(self, name: str, p_real: float, noise: float | None = None, side: int | None = None) -> Prediction:
        """The row of one scored input; `noise`: its estimated noise (`input_noise`), when measured; `side`: the
        shorter side of what was scored (the image or the face cut from it), in pixels, when known."""
        return Prediction(
            name,
            self.label_of(p_real),
            float(1 - p_real),
            float(p_real),
            model=self.model_label,
            calibrated=self.is_calibrated,
            noise=None if noise is None else round(noise, 2),
            **caution_fields(self.cautions_of(noise, side)),
        )

    def failure(self, name: str, message: str) -> Prediction:
        """The row of an input that could not be scored: no label or scores, the error, the detector's name."""
        return Prediction(name, None, None, None, message, self.model_label, self.is_calibrated)

    @property
    def model_label(self) -> str:
        """`name version` of a shipped detector; for a routed one (`dfdetect route`), its two detectors; else the
        architecture of the run that trained it."""
        release = release_label(self.metadata)
        if release:
            return release
        routing = self.noise_routing
        if routing:
            return f"{routed_name(self.metadata['routed']['primary'])}, noisy inputs {routing['noisy_model']}"
        return str(self.metadata.get("model", "model"))

    def predict_paths(
        self,
        paths: Sequence[Path],
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> list[Prediction]:
        """One Prediction per path, in order; a file that fails gets an error row and the rest go on."""
        results: list[Prediction | None] = [None] * len(paths)
        pending: list[tuple[int, Image.Image]] = []

        def flush() -> None:
            scores = self.predict_images([image for _, image in pending])
            for (index, image), p_real in zip(pending, scores, strict=True):
                results[index] = self.prediction(
                    str(paths[index]), float(p_real), self.input_noise(image), min(image.size)
                )
            pending.clear()

        for index, path in enumerate(paths):
            try:
                pending.append((index, load_rgb(path, max_pixels=max_pixels)))
            except FileNotFoundError:
                results[index] = self.failure(str(path), f"{path}: no such file")
            except (DfdetectError, OSError) as error:
                logger.warning("cannot score %s: %s", path, error)
                results[index] = self.failure(str(path), str(error))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        return [result for result in results if result is not None]

    def describe(self) -> dict[str, Any]:
        """Name, parameters, preprocessing and metrics, for people and for GET /v1/model."""
        release = self.metadata.get("release") or {}
        return {
            "model": self.metadata.get("model"),
            "name": release.get("name"),
            "version": release.get("version"),
            "label": self.model_label,
            "runtime": self.runtime,
            "parameters": self.metadata.get("parameters"),
            "preprocessing": self.preprocessing.to_dict(),
            "threshold": self.threshold,
            "threshold_policy": self.threshold_policy,
            "decision": self.decision,
            "calibrated": self.is_calibrated,
            "calibration": self.metadata.get("calibration"),
            "labels": {"0": "Fake", "1": "Real"},
            "validation_metrics": self.metadata.get("metrics"),
            "test_metrics": self.metadata.get("test_metrics"),
            "epoch": self.metadata.get("epoch"),
            "noise_caution": self.noise_caution,
            "small_caution": self.small_caution,
            "noise_routing": self.noise_routing,
        }

    @property
    def noise_routing(self) -> dict[str, Any] | None:
        """A routed detector's (`dfdetect route`) limit and the detector that scores inputs noisier than it."""
        routed = self.metadata.get("routed")
        if not routed:
            return None
        return {"noise_limit": float(routed["noise_limit"]), "noisy_model": routed_name(routed["fallback"])}
