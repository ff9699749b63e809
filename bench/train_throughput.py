"""Training throughput, side by side on one device: a naive loop vs dfdetect's trainer vs the model alone.

    python bench/train_throughput.py --images 4096 --image-size 256            # on a GPU machine
    python bench/train_throughput.py --images 64 --image-size 64 --device cpu  # a smoke run
    python bench/train_throughput.py --device cpu --cpu-precision --models efficientnet_lite0 --images 512 \
        --image-size 128 --batch-size 64 --epochs 1 --fit-data ../shared/data/dfdc-faces   # CPU fp32 vs bf16

(a) naive: what the study would have written: fp32, NCHW, PIL decoding in a default DataLoader (no workers).
(b) dfdetect: the trainer's own loader (workers, pinned memory, persistent workers, prefetch, seeded
    augmentation) and train_one_epoch (bf16 autocast and channels_last on CUDA).
(c) ceiling: the same model step on tensors already on the device.
Also times the decoding stage alone: PIL in DataLoader workers, torchvision.io.decode_jpeg on the GPU
(batched), and a pre-decoded uint8 cache. Prints a Markdown table; --json writes every number.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as v1

from dfdetect.config import TrainConfig
from dfdetect.data.dataset import FaceDataset
from dfdetect.data.discovery import list_samples, split_folder
from dfdetect.data.synthetic import make_synthetic_dataset
from dfdetect.engine.device import default_workers, memory_format, place_model, resolve_device, use_bf16
from dfdetect.engine.distributed import DistributedContext
from dfdetect.engine.loops import train_one_epoch, training_step
from dfdetect.engine.trainer import build_loader, build_optimizer
from dfdetect.models import create_model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class NaiveDataset(torch.utils.data.Dataset):
    """PIL decode + torchvision v1 transforms, as in most research repositories."""

    def __init__(self, paths: list[Path], labels: list[int], size: int) -> None:
        self.paths, self.labels = paths, labels
        self.transform = v1.Compose(
            [
                v1.Resize((size, size)),
                v1.RandomHorizontalFlip(),
                v1.ToTensor(),
                v1.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB")), torch.tensor(float(self.labels[index]))


def naive_loop(model_name: str, samples, size: int, batch: int, device: torch.device, epochs: int) -> float:
    model = create_model(model_name, image_size=size).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=7e-4)
    criterion = nn.BCEWithLogitsLoss()
    loader = DataLoader(
        NaiveDataset([s.path for s in samples], [s.label for s in samples], size), batch_size=batch, shuffle=True
    )
    seen, elapsed = 0, 0.0
    for epoch in range(epochs + 1):  # epoch 0 warms up (cuDNN autotuning, allocator)
        synchronize(device)
        start = time.perf_counter()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if epoch:
                seen += len(labels)
        synchronize(device)
        if epoch:
            elapsed += time.perf_counter() - start
    return seen / elapsed


def dfdetect_loop(
    model_name: str,
    samples,
    size: int,
    batch: int,
    device: torch.device,
    epochs: int,
    compile_model: bool,
    pipeline: str = "auto",
    precision: str = "auto",
) -> float:
    config = TrainConfig(
        model=model_name,
        image_size=size,
        batch_size=batch,
        device=str(device),
        compile=compile_model,
        input_pipeline=pipeline,
        precision=precision,
    )
    bf16 = use_bf16(precision, device)
    model = create_model(model_name, image_size=size)
    place_model(model, device, bf16)
    optimizer = build_optimizer(model, config)
    step_model = torch.compile(model) if compile_model else model
    started = time.perf_counter()
    loader = build_loader(samples, model.preprocessing, config, device, DistributedContext(), train=True)
    setup_seconds[(model_name, pipeline)] = time.perf_counter() - started
    seen, elapsed = 0, 0.0
    for epoch in range(epochs + 1):
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        synchronize(device)
        start = time.perf_counter()
        stats = train_one_epoch(step_model, loader, nn.BCEWithLogitsLoss(), optimizer, device, bf16=bf16)
        synchronize(device)
        if epoch:
            seen += stats.seen
            elapsed += time.perf_counter() - start
    return seen / elapsed


setup_seconds: dict[tuple[str, str], float] = {}


def model_step_ceiling(
    model_name: str, size: int, batch: int, device: torch.device, steps: int, compile_model: bool
) -> float:
    config = TrainConfig(model=model_name, image_size=size, batch_size=batch)
    model = create_model(model_name, image_size=size)
    place_model(model, device)
    optimizer = build_optimizer(model, config)
    step_model = torch.compile(model) if compile_model else model
    criterion = nn.BCEWithLogitsLoss()
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format(device))
    labels = torch.randint(0, 2, (batch,), device=device).float()

    def step() -> None:
        training_step(step_model, images, labels, criterion, optimizer, device)

    for _ in range(3):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch / (time.perf_counter() - start)


def decode_rates(samples, size: int, batch: int, device: torch.device) -> dict[str, float]:
    """Images/s of the decoding stage alone, three ways."""
    from dfdetect.data.transforms import Preprocessing, build_eval_transform

    rates: dict[str, float] = {}
    dataset = FaceDataset(samples, build_eval_transform(Preprocessing(input_size=size)))
    loader = DataLoader(dataset, batch_size=batch, num_workers=default_workers(-1), pin_memory=device.type == "cuda")
    for _ in loader:  # warm the page cache and start the workers
        break
    start = time.perf_counter()
    count = sum(len(labels) for _, labels in loader)
    rates["PIL in DataLoader workers"] = count / (time.perf_counter() - start)
    if device.type == "cuda":
        from torchvision.io import decode_jpeg, read_file

        raw = [read_file(str(sample.path)) for sample in samples]
        decode_jpeg(raw[:batch], device=device)
        synchronize(device)
        start = time.perf_counter()
        for index in range(0, len(raw), batch):
            decoded = decode_jpeg(raw[index : index + batch], device=device)
            torch.stack(
                [
                    torch.nn.functional.interpolate(
                        d[None].float(), size=(size, size), mode="bilinear", antialias=True
                    )[0]
                    for d in decoded
                ]
            )
        synchronize(device)
        rates["decode_jpeg on GPU (batched)"] = len(raw) / (time.perf_counter() - start)
        from dfdetect.data.gpu_pipeline import DecodedImages
        from dfdetect.preprocessing import Preprocessing as Spec

        cache = DecodedImages(samples, Spec(input_size=size)).images
        cache = cache.pin_memory()
        start = time.perf_counter()
        for _ in range(0, len(cache), batch):
            order = torch.randint(0, len(cache), (batch,))
            cache[order].to(device, non_blocking=True).float()
        synchronize(device)
        rates["uint8 cache in RAM -> GPU"] = len(cache) / (time.perf_counter() - start)
    return rates


def cpu_precision_rows(
    models: list[str], samples, size: int, batch: int, epochs: int, fit_data: Path | None, fit_fraction: float
) -> dict[str, dict[str, float]]:
    """On the CPU: dfdetect's loop in fp32 eager (NCHW) and in bf16 autocast + channels_last, side by side; with
    `fit_data`, the same short `fit` in both precisions, for the final validation loss and AUC."""
    from dfdetect.engine.trainer import fit

    cpu = torch.device("cpu")
    rows: dict[str, dict[str, float]] = {}
    for model_name in models:
        row = {
            f"{precision} img/s": dfdetect_loop(
                model_name, samples, size, batch, cpu, epochs, False, "workers", precision
            )
            for precision in ("fp32", "bf16")
        }
        if fit_data is not None:
            for precision in ("fp32", "bf16"):
                config = TrainConfig(
                    data=fit_data,
                    out=Path(tempfile.mkdtemp(prefix="dfdetect-fit-")),
                    model=model_name,
                    pretrained=model_name.startswith("efficientnet"),
                    image_size=size,
                    batch_size=batch,
                    lr=3e-4,
                    epochs=1,
                    fraction=fit_fraction,
                    device="cpu",
                    precision=precision,
                )
                last = fit(config).history[-1]
                row[f"{precision} val_loss"], row[f"{precision} val_auc"] = last["val_loss"], last["val_auc"]
        rows[model_name] = row
        print(f"{model_name}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    parser.add_argument("--models", default="own_cnn,densenet121")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also time (b) and (c) with torch.compile")
    parser.add_argument("--data", type=Path, help="reuse a generated dataset folder")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--cpu-precision",
        action="store_true",
        help="CPU only: fp32 eager vs bf16 autocast + channels_last, side by side (needs a CPU with bf16 units)",
    )
    parser.add_argument("--fit-data", type=Path, help="with --cpu-precision: a real dataset for a 1-epoch fit in each")
    parser.add_argument("--fit-fraction", type=float, default=0.05, help="share of Train the fit check uses")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    data = args.data or Path(tempfile.mkdtemp(prefix="dfdetect-bench-")) / "data"
    if not (data / "Train").is_dir():
        make_synthetic_dataset(
            data, {"Train": args.images, "Validation": 2, "Test": 2}, image_size=args.image_size, quality=90
        )
    samples = list_samples(split_folder(data, "Train"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    results: dict = {
        "device": name,
        "images": len(samples),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "models": {},
    }
    steps = max(5, len(samples) // args.batch_size)
    if args.cpu_precision:
        rows = cpu_precision_rows(
            args.models.split(","),
            samples,
            args.image_size,
            args.batch_size,
            args.epochs,
            args.fit_data,
            args.fit_fraction,
        )
        results["cpu_precision"] = rows
        save(results, args.json)
        print(f"\nCPU training, fp32 eager vs bf16 autocast + channels_last, {name}, {args.image_size} px")
        print("| model | fp32 img/s | bf16 img/s | speed-up | fp32 val loss / AUC | bf16 val loss / AUC |")
        print("|---|---|---|---|---|---|")
        for model_name, row in rows.items():
            check = [
                f"{row[f'{p} val_loss']:.4f} / {row[f'{p} val_auc']:.4f}" if f"{p} val_loss" in row else "-"
                for p in ("fp32", "bf16")
            ]
            print(
                f"| {model_name} | {row['fp32 img/s']:.1f} | {row['bf16 img/s']:.1f} | "
                f"{row['bf16 img/s'] / row['fp32 img/s']:.2f}x | {check[0]} | {check[1]} |"
            )
        return
    size, batch, epochs = args.image_size, args.batch_size, args.epochs
    for model_name in args.models.split(","):
        columns = {
            "naive": partial(naive_loop, model_name, samples, size, batch, device, epochs),
            "dfdetect": partial(dfdetect_loop, model_name, samples, size, batch, device, epochs, False),
            "dfdetect_workers": partial(
                dfdetect_loop, model_name, samples, size, batch, device, epochs, False, "workers"
            ),
            "ceiling": partial(model_step_ceiling, model_name, size, batch, device, steps, False),
        }
        if args.compile:
            columns["dfdetect_compiled"] = partial(
                dfdetect_loop, model_name, samples, size, batch, device, epochs, True
            )
            columns["ceiling_compiled"] = partial(model_step_ceiling, model_name, size, batch, device, steps, True)
        row = results["models"][model_name] = {}
        for column, measure in columns.items():
            row[column] = measure()
            print(f"{model_name} {column}: {row[column]:.0f} img/s", flush=True)
            save(results, args.json)  # a run cut short by a time limit still leaves every finished column
    results["decode"] = decode_rates(samples, args.image_size, args.batch_size, device)

    print(
        f"\nTraining throughput on {name}, {len(samples)} synthetic {args.image_size}px JPEGs, batch {args.batch_size}"
    )
    print("(b) is the trainer's default input path for the device; (b') the PIL + DataLoader-workers path.")
    print("| model | (a) naive img/s | (b) dfdetect img/s | (b') workers img/s | (c) model step img/s | b/a | b/c |")
    print("|---|---|---|---|---|---|---|")
    for model_name, row in results["models"].items():
        print(
            f"| {model_name} | {row['naive']:.0f} | {row['dfdetect']:.0f} | {row['dfdetect_workers']:.0f} | "
            f"{row['ceiling']:.0f} | {row['dfdetect'] / row['naive']:.2f}x | {row['dfdetect'] / row['ceiling']:.0%} |"
        )
        if "dfdetect_compiled" in row:
            print(
                f"| {model_name} + compile | {row['naive']:.0f} | {row['dfdetect_compiled']:.0f} | | "
                f"{row['ceiling_compiled']:.0f} | {row['dfdetect_compiled'] / row['naive']:.2f}x | "
                f"{row['dfdetect_compiled'] / row['ceiling_compiled']:.0%} |"
            )
    results["setup_seconds"] = {f"{m} {p}": round(v, 2) for (m, p), v in setup_seconds.items()}
    print("\none-time input setup (s): " + ", ".join(f"{k} {v}" for k, v in results["setup_seconds"].items()))
    print("\n| decoding stage | images/s |\n|---|---|")
    for stage, rate in results["decode"].items():
        print(f"| {stage} | {rate:.0f} |")
    save(results, args.json)


def save(results: dict, path: Path | None) -> None:
    if path is not None:
        results["setup_seconds"] = {f"{m} {p}": round(v, 2) for (m, p), v in setup_seconds.items()}
        path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
