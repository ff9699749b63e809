"""What framing costs: `dfdetect predict` with `--no-crop-face` (never), the default (auto) and `--crop-face` (always),
on the same folders of images, with the detector that `predict` loads.

    python bench/framing.py --model dfdc-lite0 --folder dfdc=../shared/data/dfdc-faces/Test \
        --folder lfw=../shared/data/lfw-faceswap --limit 200

For each folder and mode: images per second over the whole call (decoding, face finding, scoring), and how many
images were cut to their faces. One warm-up call per mode first; nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dfdetect.photos import predict_photos
from dfdetect.reporting.tables import markdown_table
from dfdetect.runtime import BasePredictor, expand_paths
from dfdetect.runtime.factory import load_predictor

MODES = ("never", "auto", "always")
HEADER = ["folder", "--crop-face", "images", "images/s", "cut to faces"]


def run(predictor: BasePredictor, paths: list[Path], mode: str, batch_size: int) -> int:
    """Score `paths` as `predict --crop-face MODE` does; returns how many images were cut to their faces."""
    if mode == "never":
        predictor.predict_paths(paths, batch_size=batch_size)
        return 0
    photos = predict_photos(predictor, paths, mode=mode, batch_size=batch_size)
    return sum(photo.row.get("face") is not None for photo in photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dfdc-lite0", help="shipped detector, run folder or checkpoint")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--folder", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--limit", type=int, default=200, help="images per folder (the first, sorted)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    predictor = load_predictor(Path(args.model), runtime=args.runtime, device="cpu")
    rows = []
    for entry in args.folder:
        name, _, folder = entry.rpartition("=")
        paths = expand_paths([folder])[: args.limit]
        for mode in MODES:
            run(predictor, paths[:8], mode, args.batch_size)  # warm-up: first calls allocate and load MTCNN
            started = time.perf_counter()
            cut = run(predictor, paths, mode, args.batch_size)
            seconds = time.perf_counter() - started
            rows.append([name or folder, mode, len(paths), f"{len(paths) / seconds:.1f}", cut])
            print(markdown_table(HEADER, rows[-1:]), flush=True)
    print(f"\n{predictor.model_label} ({predictor.runtime}), batch {args.batch_size}, CPU\n")
    print(markdown_table(HEADER, rows))


if __name__ == "__main__":
    main()
