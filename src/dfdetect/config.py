"""Typed run configuration: defaults < YAML file < command line; validated once; saved with every run."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dfdetect.data.images import DEFAULT_MAX_PIXELS
from dfdetect.errors import ConfigError
from dfdetect.preprocessing import AugmentConfig

DEVICES = ("auto", "cpu", "cuda")
PIPELINES = ("auto", "workers", "device_cache")
PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULERS = ("step", "cosine")
MONITORS = ("val_loss", "val_auc")


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with the help text (and choices) its command-line option shows: `dfdetect train --help`
    is made from these, so a new setting is one edit here."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults are the study's recipe."""

    data: Path | None = setting(None, "dataset root (Train/Validation/Test x Real/Fake)")
    out: Path | None = setting(None, "run folder for checkpoints, history and curves")
    model: str = setting("own_cnn", "registered model name (see `dfdetect models`) or timm/<name>")
    epochs: int = setting(30, "maximum epochs (early stopping may end sooner)")
    batch_size: int = setting(128, "images per step (the global batch under torchrun)")
    lr: float = setting(1e-3, "learning rate (Adam)")
    weight_decay: float = setting(7e-4, "Adam's L2 weight decay")
    dropout: float = setting(0.35, "dropout of the classifier head")
    image_size: int = setting(256, "square input size in pixels (the study: 256)")
    fraction: float = setting(1.0, "train on a stratified fraction of Train (0-1]")
    seed: int = setting(0, "seed of the data order, augmentation, dropout and initialisation")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    patience: int = setting(2, "early-stopping patience in epochs")
    lr_step_size: int = setting(5, "StepLR: epochs between learning-rate drops")
    lr_gamma: float = setting(0.1, "StepLR: factor of each drop")
    pretrained: bool = setting(False, "start from ImageNet weights")
    weights_file: Path | None = setting(None, "local pretrained weights file (implies --pretrained)")
    init: Path | None = setting(
        None,
        "fine-tune: start from the weights of a trained run folder, checkpoint file or shipped one-network detector "
        "(same model; a new schedule and optimizer, unlike --resume)",
    )
    init_member: int | None = setting(
        None, "with --init of an ensemble (e.g. the shipped dfdc-lite0-ens): fine-tune its member N (0-based)"
    )
    freeze_backbone_epochs: int = setting(0, "train only the head for the first N epochs")
    backbone_lr_factor: float = setting(1.0, "backbone learning rate = lr x this factor")
    workers: int = setting(-1, "DataLoader worker processes; -1: one per core (up to 8), 0: the main process")
    strict_data: bool = setting(False, "fail on the first bad file instead of skipping it")
    max_image_pixels: int = setting(DEFAULT_MAX_PIXELS, "larger images are skipped undecoded (bombs)")
    compile: bool = setting(False, "torch.compile the model")
    input_pipeline: str = setting(
        "auto",
        "workers (PIL in DataLoader workers), device_cache (decode once, augment batches on the device), or auto: "
        "device_cache on CUDA when the decoded split fits in cache_max_gb, else workers",
        PIPELINES,
    )
    cache_max_gb: float = setting(16.0, "the largest decoded cache input_pipeline auto keeps on the device")
    precision: str = setting(
        "auto",
        "auto: bf16 autocast on CUDA, fp32 on CPU (the study's numbers); bf16: also on CPUs with bf16 units "
        "(AVX512-BF16/AMX), with channels_last; fp32: fp32 everywhere",
        PRECISIONS,
    )
    scheduler: str = setting(
        "step",
        "step: StepLR (x lr_gamma every lr_step_size epochs, the study); cosine: linear warm-up over "
        "warmup_epochs, then cosine decay to zero by the last epoch, updated every step",
        SCHEDULERS,
    )
    warmup_epochs: float = setting(0.0, "cosine: epochs of linear warm-up (fractions allowed)")
    monitor: str = setting(
        "val_loss",
        "what early stopping and the best checkpoint follow: val_loss (the study) or val_auc",
        MONITORS,
    )
    label_smoothing: float = setting(0.0, "binary targets become 1 - s/2 and s/2 (0: plain BCE, the study)")
    ema_decay: float = setting(
        0.0,
        "keep an exponential moving average of the weights, updated every step with this decay (e.g. 0.999); it is "
        "what validation scores and the checkpoints keep (0: off, the study)",
    )
    pseudo_fakes: str = setting(
        "",
        "fakes made from real training faces on the fly, comma-separated: sbi (self-blending, ellipse mask), "
        "sbi-landmarks (self-blending, mask placed by MTCNN landmarks), upsample (generator traces), "
        "autoencoder (faces rebuilt by a decoder trained on Train's real faces)",
    )
    pseudo_fake_p: float = setting(0.5, "share of real training faces turned into a pseudo-fake each epoch")
    landmarks: Path | None = setting(
        None,
        "sbi-landmarks: JSON file of the Train faces' MTCNN landmarks, found once before the first epoch and written "
        "there if missing (default: RUN/landmarks.json); give one file to several runs on the same data",
    )
    autoencoder: Path | None = setting(
        None,
        "autoencoder: safetensors file of the auto-encoder trained on Train's real faces before the first epoch, "
        "trained and written there if missing (default: RUN/autoencoder.safetensors); share one between runs",
    )
    real_fakes: bool = setting(True, "train on the dataset's own fakes (--no-real-fakes: pseudo-fakes alone)")
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.image_size >= 32, "image_size must be >= 32"),
            (0 < self.fraction <= 1, "fraction must be in (0, 1]"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.lr_step_size >= 1, "lr_step_size must be >= 1"),
            (0 < self.lr_gamma <= 1, "lr_gamma must be in (0, 1]"),
            (self.freeze_backbone_epochs >= 0, "freeze_backbone_epochs must be >= 0"),
            (0 < self.backbone_lr_factor <= 1, "backbone_lr_factor must be in (0, 1]"),
            (self.workers >= -1, "workers must be >= -1"),
            (self.max_image_pixels > 0, "max_image_pixels must be > 0"),
            (self.input_pipeline in PIPELINES, f"input_pipeline must be one of {PIPELINES}"),
            (self.cache_max_gb >= 0, "cache_max_gb must be >= 0"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.scheduler in SCHEDULERS, f"scheduler must be one of {SCHEDULERS}"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.monitor in MONITORS, f"monitor must be one of {MONITORS}"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)"),
            (0 <= self.pseudo_fake_p <= 1, "pseudo_fake_p must be in [0, 1]"),
            (self.init_member is None or self.init is not None, "init_member: give init, the ensemble it picks from"),
            (self.init_member is None or self.init_member >= 0, "init_member must be >= 0"),
            (self.real_fakes or bool(self.pseudo_fakes), "real_fakes: without the dataset's fakes, give pseudo_fakes"),
            (
                self.device in DEVICES or self.device.startswith("cuda:"),
                f"device must be one of {DEVICES} or cuda:N",
            ),
        ]
        for ok, message in checks:
            if not ok:
                name = message.split()[0].rstrip(":")
                raise ConfigError(f"{message}; got {name} = {getattr(self, name)!r}")
        if self.pseudo_fakes:  # unknown names are an error here, not at the first epoch
            from dfdetect.data.pseudo_fakes import parse_makers

            parse_makers(self.pseudo_fakes)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (paths as strings), ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> TrainConfig:
        return build_config(self.to_dict(), changes)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise naming the key."""
    if value is None:
        if type(None) in typing.get_args(kind):
            return None
        raise ConfigError(f"{name}: a value is required")
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
                return value.lower() in {"true", "yes", "1"}
            if isinstance(value, bool):
                return value
            raise ValueError("expected true or false")
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected an integer")
            return int(value)
        if kind is float:
            return float(value)  # YAML reads 1e-3 as a string; float() accepts it
        if kind is Path:
            return Path(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name}: invalid value {value!r} ({error})") from None
    return value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + key for key in unknown)}; "
            f"known: {', '.join(prefix + key for key in sorted(known))}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{key}: expected a mapping of options")
            kwargs[key] = _build(hints[key], value, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(prefix + key, hints[key], value)
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def dotted_to_nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """{'augment.jpeg_p': 0.2} -> {'augment': {'jpeg_p': 0.2}}."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        target = nested
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return nested


def build_config(*layers: dict[str, Any]) -> TrainConfig:
    """Merge layers left to right (later wins; None values are skipped) over the defaults and validate."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _merge(merged, {key: value for key, value in dotted_to_nested(layer).items() if value is not None})
    config: TrainConfig = _build(TrainConfig, merged)
    return config


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML ({error})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, found {type(loaded).__name__}")
    return loaded


def load_config(
    path: Path | None = None, overrides: dict[str, Any] | None = None, base: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults < `base` (a shipped recipe) < YAML file at `path` < `overrides` (command line; None = not given)."""
    from_file = read_yaml(path) if path is not None else {}
    try:
        return build_config(base or {}, from_file, overrides or {})
    except ConfigError as error:
        where = f"{path}: " if path is not None and not str(error).startswith(str(path)) else ""
        raise ConfigError(f"{where}{error}") from None


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the resolved config as YAML that `--config` reads back to the same config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
