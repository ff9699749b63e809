"""A bounded load against `dfdetect serve` on loopback: requests/s, p50/p99 latency and errors.

    python bench/serve_load.py --model runs/own_cnn --requests 2000 --concurrency 8

Starts the server itself (127.0.0.1, a free port), sends `--requests` POST /v1/predict requests with one
JPEG each from `--concurrency` threads, stops the server, prints a Markdown table. Without --model it builds
an untrained own_cnn checkpoint; `--images DIR` sends real images in turn instead of random ones (the CPU
default re-scores in fp32 the images whose score lies near the threshold, so its speed depends on model and
images).
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def untrained_checkpoint(folder: Path, image_size: int) -> Path:
    from dfdetect.config import TrainConfig
    from dfdetect.engine.checkpoint import build_metadata, save_checkpoint
    from dfdetect.models import create_model

    model = create_model("own_cnn", image_size=image_size)
    config = TrainConfig(model="own_cnn", image_size=image_size)
    path = folder / "checkpoints" / "best.safetensors"
    save_checkpoint(
        path, model.state_dict(), build_metadata("own_cnn", config.to_dict(), model.preprocessing.to_dict(), 0, {})
    )
    return folder


def load_payloads(folder: Path | None) -> list[bytes]:
    """The request bodies: every image under `folder`, or 16 random-noise 224x224 JPEGs."""
    if folder is not None:
        from dfdetect.runtime import expand_paths

        payloads = [path.read_bytes() for path in expand_paths([str(folder)])]
        if not payloads:
            raise SystemExit(f"{folder}: no images found")
        return payloads
    rng = np.random.default_rng(0)
    payloads = []
    for _ in range(16):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        payloads.append(buffer.getvalue())
    return payloads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="run folder, checkpoint or .onnx (default: untrained own_cnn)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128, help="for the untrained default model")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--images", type=Path, help="send these images in turn (a folder, searched recursively)")
    args = parser.parse_args()
    model = args.model or untrained_checkpoint(Path(tempfile.mkdtemp(prefix="dfdetect-load-")), args.image_size)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dfdetect",
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--runtime",
            args.runtime,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise SystemExit("server did not start: " + server.stderr.read().decode()[-1000:] if server.stderr else "")
        info = httpx.get(base + "/v1/model").json()
        payloads = load_payloads(args.images)

        def one(index: int, client: httpx.Client) -> tuple[float, bool]:
            start = time.perf_counter()
            try:
                response = client.post(
                    base + "/v1/predict",
                    files={"files": ("x.jpg", payloads[index % len(payloads)], "image/jpeg")},
                    timeout=60,
                )
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            return time.perf_counter() - start, ok

        clients = [httpx.Client() for _ in range(args.concurrency)]
        for client in clients:  # warm-up: one request per connection
            one(0, client)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda i: one(i, clients[i % args.concurrency]), range(args.requests)))
        elapsed = time.perf_counter() - started
        for client in clients:
            client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = sorted(latency for latency, _ in results)
    errors = sum(1 for _, ok in results if not ok)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    runtime = info["runtime"] + (f" {info['precision']}" if "precision" in info else "")
    sent = f"the {len(payloads)} images of {args.images}" if args.images else "16 random 224x224 JPEGs"
    print(
        f"dfdetect serve, {info['model']} ({runtime}, {info['preprocessing']['input_size']} px), "
        f"{args.requests} requests of one image each from {sent}, concurrency {args.concurrency}, loopback"
    )
    print("| requests | concurrency | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    print(
        f"| {args.requests} | {args.concurrency} | {args.requests / elapsed:.1f} | "
        f"{statistics.median(latencies) * 1000:.1f} | {p99 * 1000:.1f} | {errors} |"
    )
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
