"""What each pseudo-fake maker costs per image, side by side in one run (single-threaded, as in a DataLoader worker).

    python bench/pseudo_fakes.py --data ../shared/data/dfdc-faces --images 20

Real faces from Train/Real of `--data` (any folder of face crops will do); without it, generated 224 px images
(no face in them: `sbi-landmarks` then pays MTCNN's search and falls back to the ellipse). Prints a Markdown table:
milliseconds per image, median of `--repeats` passes over the images. The last row is `sbi-landmarks` as training
runs it: with each face's landmarks found once beforehand (data/landmarks.py), so the time is the blend's alone.
`--autoencoder FILE` adds rows for the `autoencoder` makers with that trained network (data/autoencoder.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dfdetect.data.autoencoder import reconstructors
from dfdetect.data.pseudo_fakes import MAKERS, TRAINED, Maker, face_landmarks, make_pseudo_fake


def faces(data: Path | None, count: int) -> list[np.ndarray]:
    if data is None:
        generator = np.random.default_rng(0)
        return [generator.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(count)]
    files = sorted((data / "Train" / "Real").iterdir())[:count]
    return [np.asarray(Image.open(path).convert("RGB")) for path in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--autoencoder", type=Path, help="a trained auto-encoder (RUN/autoencoder.safetensors)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # DataLoader workers run one thread each
    images = faces(args.data, args.images)
    print("| maker | ms per image |\n|---|---|")
    for name, make in MAKERS.items():
        print(f"| {name} | {milliseconds(make, images, args.repeats):.1f} |")
    stored = {id(image): face_landmarks(image) for image in images}

    def with_stored_landmarks(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return make_pseudo_fake(image, ["sbi-landmarks"], rng, locate=lambda _: stored[id(image)])

    cost = milliseconds(with_stored_landmarks, images, args.repeats)
    print(f"| sbi-landmarks, landmarks found once before training | {cost:.1f} |")
    if args.autoencoder is not None:
        for name, make in reconstructors(args.autoencoder, TRAINED).items():
            print(f"| {name} | {milliseconds(make, images, args.repeats):.1f} |")


def milliseconds(make: Maker, images: list[np.ndarray], repeats: int) -> float:
    """Median over `repeats` passes of the milliseconds per image."""
    make(images[0], np.random.default_rng(0))  # warm-up (MTCNN loads its weights)
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for index, image in enumerate(images):
            make(image, np.random.default_rng(index))
        passes.append((time.perf_counter() - started) / len(images) * 1000)
    return float(np.median(passes))


if __name__ == "__main__":
    main()
