"""How long `dfdetect predict ONE_IMAGE` takes from a cold process, side by side: without the export cache, with
an empty one (the first run, which fills it), and with a filled one (every run after).

    python bench/cold_start.py                      # the default detector on a generated 224 px face-like image
    python bench/cold_start.py --model runs/RUN --image photo.jpg --repeats 5

On the CPU the default runtime, OpenVINO, needs the PyTorch model exported to ONNX and compiled; both are kept in
the cache folder ($DFDETECT_CACHE_DIR, default ~/.cache/dfdetect) between runs (dfdetect.runtime.export). The
three kinds of run take turns, so whatever else the machine does weighs on each alike; the table gives the median
and the range of each, in seconds, of the whole process (imports, model load, export or cache, scoring).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dfdetect.reporting.tables import markdown_table

KINDS = ("no cache", "empty cache", "filled cache")


def timed_run(command: list[str], cache: str) -> float:
    start = time.perf_counter()
    environment = {**os.environ, "DFDETECT_CACHE_DIR": cache}
    subprocess.run(command, env=environment, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a run folder, checkpoint or shipped name (default: dfdetect's)")
    parser.add_argument("--image", type=Path, help="the image to score (default: a generated one)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dfdetect-cold-start-") as scratch:
        image = args.image
        if image is None:
            image = Path(scratch) / "face.png"
            rng = np.random.default_rng(0)
            Image.fromarray(rng.integers(60, 200, (224, 224, 3), dtype=np.uint8)).save(image)
        command = [sys.executable, "-m", "dfdetect", "predict", str(image), "--format", "csv"]
        command += ["--model", args.model] if args.model else []
        filled = Path(scratch) / "filled"
        timed_run(command, str(filled))  # fill it once
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for repeat in range(args.repeats):
            empty = Path(scratch) / f"empty{repeat}"
            for kind, cache in zip(KINDS, ("", str(empty), str(filled)), strict=True):
                times[kind].append(timed_run(command, cache))
            shutil.rmtree(empty, ignore_errors=True)
    rows = [
        [kind, f"{statistics.median(values):.1f}", f"{min(values):.1f}-{max(values):.1f}"]
        for kind, values in times.items()
    ]
    print(f"dfdetect predict, one image, model {args.model or 'default'}, {args.repeats} run(s) of each, seconds")
    print(markdown_table(["export cache", "median", "range"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
