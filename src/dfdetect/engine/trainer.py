"""The trainer, top to bottom: prepare_data -> fit (train_one_epoch, evaluate, early stopping, checkpoints).

Every epoch reseeds the process's random generators from (seed, epoch), the data order comes from (seed, epoch)
and each image's augmentation from (seed, epoch, index) (conventions.epoch_seed and sample_seed), whatever the
number of workers or ranks: a run resumed from the checkpoint of epoch k replays epoch k+1 exactly as an
uninterrupted run would (on the CPU, where kernels are deterministic). Under torchrun the same loop runs
DistributedDataParallel.
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from dfdetect.config import TrainConfig, save_config
from dfdetect.conventions import DEFAULT_THRESHOLD, epoch_seed
from dfdetect.data.autoencoder import autoencoder_for, reconstructors
from dfdetect.data.dataset import EpochSampler, FaceDataset, make_loader, stratified_fraction
from dfdetect.data.discovery import BadFile, Sample, class_counts, load_split, write_bad_files
from dfdetect.data.gpu_pipeline import BatchAugment, CachedBatches, DecodedImages, cache_bytes
from dfdetect.data.landmarks import landmarks_for
from dfdetect.data.pseudo_fakes import TRAINED, Maker, parse_makers
from dfdetect.data.transforms import Preprocessing, build_eval_transform, build_train_transform
from dfdetect.engine.checkpoint import (
    InitialWeights,
    atomic_write,
    build_metadata,
    initial_weights,
    load_checkpoint,
    save_checkpoint,
)
from dfdetect.engine.device import default_workers, place_model, resolve_device, use_bf16
from dfdetect.engine.distributed import (
    DistributedContext,
    all_agree,
    cleanup,
    gather_predictions,
    init_distributed,
    main_process_first,
)
from dfdetect.engine.loops import Progress, no_progress, predict_loader, train_one_epoch
from dfdetect.metrics import binary_cross_entropy
from dfdetect.models import Detector, create_model
from dfdetect.models.weights import load_into
from dfdetect.reporting.plots import plot_learning_curve, save_figure
from dfdetect.run_folder import RunFolder
from dfdetect.tracking import Tracker

logger = logging.getLogger(__name__)

HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "seconds")


@dataclass
class DataBundle:
    """The scanned training and validation samples, with what the pre-scan skipped."""

    train: list[Sample]
    validation: list[Sample]
    bad_files: list[BadFile]
    train_available: int

    def summary(self) -> dict[str, dict[str, int]]:
        """Images per split and class (Train counts what is used after --fraction)."""
        return {"Train": class_counts(self.train), "Validation": class_counts(self.validation)}


@dataclass
class FitResult:
    """What a finished (or early-stopped) run produced."""

    run_dir: Path
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    model: Detector | None = None
    """The model with the best epoch's weights restored."""


class EarlyStopping:
    """Stop after `patience` epochs without a better monitored value; remember the best epoch.

    Lower is better by default (validation loss); `higher_is_better` for a score such as validation AUC.
    """

    def __init__(self, patience: int, higher_is_better: bool = False) -> None:
        self.patience = patience
        self.sign = -1.0 if higher_is_better else 1.0
        self.best_loss = math.inf  # the best value times `sign`, so that lower is always better here
        self.best_epoch = 0
        self.bad_epochs = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's monitored value; True when it is the best so far."""
        if self.sign * value < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = self.sign * value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss, self.best_epoch, self.bad_epochs = (
            state["best_loss"],
            state["best_epoch"],
            state["bad_epochs"],
        )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (data order and augmentation have their own seeds: EpochSampler)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_data(config: TrainConfig) -> DataBundle:
    """Find, pre-scan and subsample the Train and Validation splits of `config.data`."""
    if config.data is None:
        raise ValueError("no dataset: give --data DIR (or `data:` in the config file)")
    train_all, bad_train = load_split(config.data, "Train", config.strict_data, config.max_image_pixels)
    validation, bad_validation = load_split(config.data, "Validation", config.strict_data, config.max_image_pixels)
    train = stratified_fraction(train_all, config.fraction, config.seed)
    if not config.real_fakes:  # pseudo-fakes alone: the dataset's fakes stay out of training (not of validation)
        train = [sample for sample in train if sample.label == 1]
    return DataBundle(train, validation, bad_train + bad_validation, len(train_all))


def validation_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Loss, accuracy and AUC of one validation pass."""
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else float("nan")
    return {
        "val_loss": binary_cross_entropy(labels, scores),
        "val_acc": float(((scores >= DEFAULT_THRESHOLD).astype(int) == labels).mean()),
        "val_auc": auc,
    }


def build_loader(
    samples: list[Sample],
    preprocessing: Preprocessing,
    config: TrainConfig,
    device: torch.device,
    context: DistributedContext,
    train: bool,
    landmarks: Mapping[Path, np.ndarray | None] | None = None,
    trained: Mapping[str, Maker] | None = None,
) -> DataLoader:
    """The training (augmented, shuffled, seeded) or validation loader; this rank's shard of a global batch.

    Either PIL decoding in DataLoader workers, or (input_pipeline device_cache, the CUDA default when it fits)
    batches read from a decoded uint8 cache and augmented on the device.
    """
    per_rank_batch = max(1, config.batch_size // context.world_size)
    split = "train" if train else "validation"
    sampler = EpochSampler(
        len(samples),
        shuffle=train,
        seed=config.seed,
        rank=context.rank,
        world_size=context.world_size,
        seeded=train,
        pad=train,
    )
    if input_pipeline(config, device, len(samples), preprocessing.input_size) == "device_cache":
        started = time.perf_counter()
        cache = DecodedImages(samples, preprocessing, config.max_image_pixels)
        cache.to_device_if_it_fits(device)
        logger.info(
            "input (%s): uint8 cache of %d images, %.2f GiB on %s, built in %.1f s; augmentation on the device",
            split,
            len(cache.images),
            cache.images.nbytes / 2**30,
            cache.images.device,
            time.perf_counter() - started,
        )
        augment = BatchAugment(config.augment if train else None, preprocessing)
        return CachedBatches(cache, sampler, per_rank_batch, device, augment)  # type: ignore[return-value]
    transform = build_train_transform(preprocessing, config.augment) if train else build_eval_transform(preprocessing)
    makers = parse_makers(config.pseudo_fakes) if train else []
    dataset = FaceDataset(
        samples,
        transform,
        config.max_image_pixels,
        makers,
        config.pseudo_fake_p,
        landmarks,
        balance_sharpness_p=config.augment.balance_sharpness_p if train else 0.0,
        trained=trained if train else None,
    )
    workers = default_workers(config.workers)
    logger.info("input (%s): PIL decoding in %d DataLoader worker(s)", split, workers)
    return make_loader(
        dataset,
        per_rank_batch,
        workers,
        sampler,
        pin_memory=device.type == "cuda",
        persistent=True,
        seed=config.seed,
    )


def training_landmarks(
    config: TrainConfig, samples: list[Sample], run: RunFolder, context: DistributedContext | None = None
) -> dict[Path, np.ndarray | None] | None:
    """With `--pseudo-fakes sbi-landmarks`, the landmarks of Train's real faces, found once (data/landmarks.py);
    under torchrun rank 0 finds the missing ones and the other ranks read its file."""
    if "sbi-landmarks" not in parse_makers(config.pseudo_fakes) or config.data is None:
        return None
    reals = [sample.path for sample in samples if sample.label == 1]
    with main_process_first(context or DistributedContext()):
        return landmarks_for(reals, config.landmarks or run.landmarks, config.data, config.max_image_pixels)


def trained_makers(
    config: TrainConfig, samples: list[Sample], run: RunFolder, context: DistributedContext | None = None
) -> Mapping[str, Maker]:
    """With `--pseudo-fakes autoencoder` (or `autoencoder-sharp`), the makers that rebuild faces with an auto-encoder
    trained on Train's real faces, once (data/autoencoder.py); under torchrun rank 0 trains it and the other ranks
    read its file."""
    chosen = [name for name in parse_makers(config.pseudo_fakes) if name in TRAINED]
    if not chosen:
        return {}
    reals = [sample.path for sample in samples if sample.label == 1]
    with main_process_first(context or DistributedContext()):
        file = autoencoder_for(
            reals, config.autoencoder or run.autoencoder, config.max_image_pixels, default_workers(config.workers)
        )
    return reconstructors(file, chosen)


def input_pipeline(config: TrainConfig, device: torch.device, count: int, size: int) -> str:
    """Which input path a run uses (see TrainConfig.input_pipeline)."""
    if config.pseudo_fakes or config.augment.balance_sharpness_p > 0:
        return "workers"  # pseudo-fakes and sharpness balancing work on decoded PIL images, in the DataLoader workers
    if config.input_pipeline != "auto":
        return config.input_pipeline
    needed = cache_bytes(count, size)
    fits = needed <= config.cache_max_gb * 2**30 and needed <= available_memory() // 2
    return "device_cache" if device.type == "cuda" and fits else "workers"


def available_memory() -> int:
    """Bytes of RAM free now (the cache is built in RAM before it moves to the GPU)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: trust cache_max_gb
        return 2**62


def build_optimizer(model: Detector, config: TrainConfig) -> torch.optim.Adam:
    """Adam with the study's weight decay; the backbone may get a lower learning rate than the head."""
    groups = [
        {
            "params": list(model.backbone_parameters()),
            "lr": config.lr * config.backbone_lr_factor,
            "name": "backbone",
        },
        {"params": list(model.head_parameters()), "lr": config.lr, "name": "head"},
    ]
    return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)


class SmoothedBCEWithLogits(nn.Module):
    """Binary cross-entropy on logits against targets pulled towards 1/2 by `smoothing` (label smoothing)."""

    def __init__(self, smoothing: float = 0.0) -> None:
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = labels * (1.0 - self.smoothing) + 0.5 * self.smoothing
        return nn.functional.binary_cross_entropy_with_logits(logits, targets)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler, bool]:
    """The learning-rate schedule and whether it steps every batch (cosine) rather than every epoch (step)."""
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_size, gamma=config.lr_gamma), False
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total - 1, round(config.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True


def write_history(history: list[dict[str, float]], path: Path) -> None:
    """history.csv: one row per epoch; written to a temporary file and renamed, so a kill never truncates it."""

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)


def save_learning_curves(history: list[dict[str, float]], run: RunFolder, model_name: str) -> None:
    """accuracy.png and loss.png: train vs validation per epoch."""
    epochs = [int(row["epoch"]) for row in history]
    for key, metric in (("acc", "accuracy"), ("loss", "loss")):
        train = [row[f"train_{key}"] for row in history]
        validation = [row[f"val_{key}"] for row in history]
        figure = plot_learning_curve(epochs, train, validation, metric, f"{model_name}: {metric} per epoch")
        save_figure(figure, run.curve(metric))


@dataclass
class TrainingState:
    """What a resume needs besides the weights; stored in `last.safetensors` under `train_state/`."""

    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    early_stopping: dict[str, Any]
    history: list[dict[str, float]]
    finished: bool = False
    raw_model: dict[str, Any] = field(default_factory=dict)
    """With a weight EMA the checkpoint's weights are the average; the raw weights training goes on from are here."""
    ema_updates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "early_stopping": self.early_stopping,
            "history": self.history,
            "finished": self.finished,
            "raw_model": self.raw_model,
            "ema_updates": self.ema_updates,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainingState:
        return cls(
            state["optimizer"],
            state["scheduler"],
            state["early_stopping"],
            list(state["history"]),
            bool(state.get("finished", False)),
            dict(state.get("raw_model") or {}),
            int(state.get("ema_updates", 0)),
        )


class CheckpointWriter:
    """Saves an epoch into the run folder: `best` when it improved, then `last` with the training state,
    history.csv and the learning curves. Best first, then last: a kill between the two leaves `last` one
    epoch behind, which a resume replays."""

    def __init__(self, run: RunFolder, config: TrainConfig, preprocessing: Preprocessing, tracker: Tracker) -> None:
        self.run, self.config, self.preprocessing, self.tracker = run, config, preprocessing, tracker

    def start(self, data: DataBundle) -> None:
        """The files a run has before its first epoch: the config and what the pre-scan skipped."""
        self.run.root.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.run.config)
        write_bad_files(data.bad_files, self.run.bad_files)

    def save_epoch(self, model: nn.Module, row: dict[str, float], improved: bool, state: TrainingState) -> None:
        metrics = {key: row[key] for key in ("val_loss", "val_acc", "val_auc")}
        epoch = int(row["epoch"])
        metadata = build_metadata(
            self.config.model, self.config.to_dict(), self.preprocessing.to_dict(), epoch, metrics
        )
        if improved:
            save_checkpoint(self.run.best, model.state_dict(), metadata)
        save_checkpoint(self.run.last, model.state_dict(), metadata, state.to_dict())
        write_history(state.history, self.run.history)
        save_learning_curves(state.history, self.run, self.config.model)
        self.tracker.log_metrics(row, step=epoch)

    def finish(self, result: FitResult) -> None:
        """The final history, and the run's summary and files for the tracker."""
        write_history(result.history, self.run.history)
        best = next((row for row in result.history if row["epoch"] == result.best_epoch), {})
        self.tracker.log_metrics({f"best_{key}": value for key, value in best.items() if key != "epoch"})
        self.tracker.log_metrics({"best_epoch": result.best_epoch, "epochs_run": result.epochs_run})
        self.tracker.log_artifacts(
            [self.run.config, self.run.history, self.run.curve("accuracy"), self.run.curve("loss")]
        )


def restore_training(
    run: RunFolder,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    stopper: EarlyStopping,
    ema: AveragedModel | None = None,
) -> tuple[TrainingState, int]:
    """Load `last` into the model (and its weight EMA), optimizer, schedule and early stopping; returns its state
    and the next epoch."""
    model_state, metadata, saved = load_checkpoint(run.last)
    if saved is None:
        raise ValueError(f"{run.last}: holds no training state to resume from")
    state = TrainingState.from_dict(saved)
    model.load_state_dict(state.raw_model or model_state)
    if ema is not None:  # a run saved without an EMA starts one from its weights
        ema.module.load_state_dict(model_state)
        ema.n_averaged.fill_(state.ema_updates if state.raw_model else 0)
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    stopper.load_state_dict(state.early_stopping)
    logger.info("resuming %s from epoch %d", run.root, int(metadata["epoch"]) + 1)
    return state, int(metadata["epoch"]) + 1


def build_ema(model: nn.Module, config: TrainConfig) -> AveragedModel | None:
    """The weight EMA (torch.optim.swa_utils): a copy of the model whose weights and BatchNorm statistics follow
    the trained ones, `config.ema_decay` per step; None when off."""
    if config.ema_decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)


def start_from(model: Detector, start: InitialWeights, config: TrainConfig) -> None:
    """Fine-tuning (`init`): load a trained network's weights; optimizer, schedule and epochs start afresh."""
    load_into(model, start.state, start.path)
    logger.info(
        "fine-tuning from %s (epoch %s of its run, trained at %s px; this run: %d px)",
        start.path,
        start.metadata.get("epoch"),
        start.metadata.get("preprocessing", {}).get("input_size"),
        config.image_size,
    )


def training_device(config: TrainConfig, context: DistributedContext) -> torch.device:
    """This rank's GPU under torchrun, else the configured device."""
    if context.enabled and torch.cuda.is_available() and config.device != "cpu":
        return torch.device("cuda", context.local_rank)
    return resolve_device(config.device)


def build_criterion(config: TrainConfig) -> nn.Module:
    """Binary cross-entropy on logits (the study), with label smoothing when configured."""
    return SmoothedBCEWithLogits(config.label_smoothing) if config.label_smoothing else nn.BCEWithLogitsLoss()


def log_epoch(row: dict[str, float], improved: bool) -> None:
    logger.info(
        "epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f auc %.4f | %.1fs%s",
        row["epoch"],
        row["train_loss"],
        row["train_acc"],
        row["val_loss"],
        row["val_acc"],
        row["val_auc"],
        row["seconds"],
        " (best)" if improved else "",
    )


def fit(
    config: TrainConfig,
    data: DataBundle | None = None,
    resume: bool = False,
    progress: Progress = no_progress,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    tracker: Tracker | None = None,
) -> FitResult:
    """Train `config.model` on `config.data` into `config.out`; with `resume`, continue from its last checkpoint.

    `on_epoch` sees each epoch's history row after its checkpoint is written (hyperparameter search uses it
    to prune hopeless trials by raising); `tracker` gets every epoch's row and the run's files.
    """
    if config.out is None:
        raise ValueError("no output folder: give --out RUN_DIR")
    run = RunFolder(config.out)
    context = init_distributed(config.device)
    device = training_device(config, context)
    # A wrong --init fails before the data's pre-scan, which takes minutes on a large Train.
    start = (
        initial_weights(config.init, config.model, config.init_member)
        if config.init is not None and not resume
        else None
    )
    data = data or prepare_data(config)
    tracker = tracker if context.is_main and tracker is not None else Tracker()

    seed_everything(config.seed)
    model = create_model(
        config.model,
        dropout=config.dropout,
        pretrained=config.pretrained,
        weights_file=config.weights_file,
        image_size=config.image_size,
    )
    if start is not None:  # a resume loads the run's own last weights below instead
        start_from(model, start, config)
    bf16 = use_bf16(config.precision, device)
    place_model(model, device, bf16)
    landmarks = training_landmarks(config, data.train, run, context)
    trained = trained_makers(config, data.train, run, context)
    train_loader = build_loader(data.train, model.preprocessing, config, device, context, True, landmarks, trained)
    validation_loader = build_loader(data.validation, model.preprocessing, config, device, context, train=False)
    train_sampler: EpochSampler = train_loader.sampler  # type: ignore[assignment]
    optimizer = build_optimizer(model, config)
    scheduler, per_step = build_scheduler(optimizer, config, len(train_loader))
    criterion = build_criterion(config)
    stopper = EarlyStopping(config.patience, higher_is_better=config.monitor == "val_auc")
    writer = CheckpointWriter(run, config, model.preprocessing, tracker) if context.is_main else None
    if writer is not None:
        writer.start(data)
        logger.info("data: %s; %d bad file(s) skipped", data.summary(), len(data.bad_files))
    ema = build_ema(model, config)
    state, start_epoch = TrainingState({}, {}, {}, []), 1
    if resume:
        state, start_epoch = restore_training(run, model, optimizer, scheduler, stopper, ema)
        if state.finished:
            start_epoch = config.epochs + 1
    history = state.history

    step_model: nn.Module = model
    if context.enabled:
        # Every rank sees batch_size / world_size images per step, so the global batch is the configured one.
        step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        step_model = torch.compile(step_model)  # type: ignore[assignment]
    logger.info("precision: %s", "bf16 autocast, channels_last" if bf16 else "fp32")
    quiet: Progress = progress if context.is_main else no_progress

    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        epoch_start = time.perf_counter()
        seed_everything(epoch_seed(config.seed, epoch))  # dropout and anything else drawn in this process
        train_sampler.set_epoch(epoch)
        model.set_backbone_trainable(epoch > config.freeze_backbone_epochs)
        lr = optimizer.param_groups[-1]["lr"]
        stats = train_one_epoch(
            step_model,
            train_loader,
            criterion,
            optimizer,
            device,
            quiet,
            f"epoch {epoch}/{config.epochs} train",
            bf16,
            scheduler if per_step else None,
            None if ema is None else functools.partial(ema.update_parameters, model),
        ).reduced(context)
        evaluated = step_model if ema is None else ema.module  # with an EMA, the average is what is kept
        labels, scores = predict_loader(evaluated, validation_loader, device, quiet, f"epoch {epoch} validate", bf16)
        labels, scores = gather_predictions(labels, scores, context)
        if not per_step:
            scheduler.step()
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": stats.loss,
            "train_acc": stats.accuracy,
            **validation_metrics(labels, scores),
            "seconds": round(time.perf_counter() - epoch_start, 3),
        }
        history.append(row)
        improved = stopper.update(row[config.monitor], epoch)
        log_epoch(row, improved)
        if writer is not None:
            finished = stopper.should_stop or epoch == config.epochs
            state = TrainingState(
                optimizer.state_dict(), scheduler.state_dict(), stopper.state_dict(), history, finished
            )
            if ema is not None:
                state.raw_model, state.ema_updates = model.state_dict(), int(ema.n_averaged)
            writer.save_epoch(model if ema is None else ema.module, row, improved, state)
        if on_epoch is not None:
            on_epoch(row)
        # Every rank computed the same gathered metrics; rank 0's verdict is broadcast to rule out any drift.
        if all_agree(stopper.should_stop, context):
            stopper.bad_epochs = max(stopper.bad_epochs, stopper.patience)
            break

    stopped_early = stopper.should_stop and len(history) < config.epochs
    if stopped_early:
        logger.info("early stopping after epoch %d; best epoch %d", len(history), stopper.best_epoch)
    result = FitResult(
        run_dir=run.root,
        best_epoch=stopper.best_epoch,
        best_val_loss=next((row["val_loss"] for row in history if row["epoch"] == stopper.best_epoch), math.nan),
        epochs_run=len(history),
        stopped_early=stopped_early,
        seconds=sum(row["seconds"] for row in history) if history else time.perf_counter() - started,
        history=history,
    )
    if writer is not None:
        writer.finish(result)
    cleanup(context)  # waits for rank 0's files
    best_state, _, _ = load_checkpoint(run.best)
    model.load_state_dict(best_state)  # early stopping restores the best epoch
    result.model = model
    return result
