"""How a detector's scores on a set follow the size of the faces it scored, from an evaluation already run: per band
of the scored face's shorter side (the crop `auto` cut, in the image's pixels, before the network's resize), how
many real and fake faces, accuracy at the detector's threshold, recall on each class, mean p_fake; and the AUC
within bands (only real-fake pairs of one band compared, each band weighted by its pairs), which a set whose real
and fake faces differ in size (stylegan2-lfw, docs/results.md section 18) cannot inflate with that difference:

    dfdetect evaluate --split Validation --data stylegan2-lfw=../shared/data/stylegan2-lfw \
        --model ens3=dfdc-lite0-ens --faces-file runs/faces-eval.json --out runs/xval-sizes
    python bench/face_sizes.py runs/xval-sizes/ens3/stylegan2-lfw --data ../shared/data/stylegan2-lfw \
        --faces-file runs/faces-eval.json --threshold 0.529

0 = Fake, 1 = Real. No timings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from dfdetect.data.discovery import list_samples
from dfdetect.data.images import DEFAULT_MAX_PIXELS, load_rgb
from dfdetect.experiment import read_per_image
from dfdetect.faces import DEFAULT_MARGIN, FaceCropper
from dfdetect.reporting.tables import markdown_table


def scored_sides(folder: Path, faces_file: Path | None, margin: float) -> dict[str, int]:
    """Each image's scored shorter side, by resolved path, framed as `evaluate` frames it by default (auto): its
    face crop's, or the whole image's when `auto` scores it as it is."""
    paths = [sample.path for sample in list_samples(folder)]
    boxes = FaceCropper(mode="auto", margin=margin, faces_file=faces_file).boxes_of(paths, DEFAULT_MAX_PIXELS)
    sides = {}
    for path in paths:
        box = boxes[path]
        side = min(box[2] - box[0], box[3] - box[1]) if box is not None else min(load_rgb(path).size)
        sides[str(path.resolve())] = side
    return sides


def within_band_auc(labels: np.ndarray, scores: np.ndarray, bands: np.ndarray) -> tuple[float, int]:
    """AUC over the real-fake pairs that share a band (Real positive), and how many pairs that is."""
    total, weight = 0.0, 0
    for band in np.unique(bands):
        inside = bands == band
        pairs = int((labels[inside] == 1).sum() * (labels[inside] == 0).sum())
        if pairs:
            total += roc_auc_score(labels[inside], scores[inside]) * pairs
            weight += pairs
    return (total / weight if weight else float("nan")), weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cell", type=Path, help="one model-and-set folder of an evaluation (with predictions.csv)")
    parser.add_argument("--data", type=Path, required=True, help="the Real/Fake folder that cell scored")
    parser.add_argument("--faces-file", type=Path, help="faces found by that evaluation (its --faces-file)")
    parser.add_argument("--face-margin", type=float, default=DEFAULT_MARGIN)
    parser.add_argument("--threshold", type=float, default=0.5, help="Real when P(Real) >= this")
    parser.add_argument("--edges", default="0,48,64,80,96,112,128,160,224", help="lower edges of the side bands")
    args = parser.parse_args()

    paths, labels, p_real = read_per_image(args.cell / "predictions.csv")
    sides_of = scored_sides(args.data, args.faces_file, args.face_margin)
    sides = np.array([sides_of[str(Path(path).resolve())] for path in paths])
    edges = [float(edge) for edge in args.edges.split(",")]
    bands = np.digitize(sides, edges[1:])
    rows = []
    for index, low in enumerate(edges):
        inside = bands == index
        if not inside.any():
            continue
        high = edges[index + 1] if index + 1 < len(edges) else np.inf
        real, fake = inside & (labels == 1), inside & (labels == 0)
        called_real = p_real >= args.threshold
        rows.append(
            [
                f"[{low:g}, {high:g})",
                str(int(real.sum())),
                str(int(fake.sum())),
                f"{np.mean(called_real[inside] == (labels[inside] == 1)):.3f}",
                f"{np.mean(called_real[real]):.3f}" if real.any() else "-",
                f"{np.mean(~called_real[fake]):.3f}" if fake.any() else "-",
                f"{np.mean(1 - p_real[inside]):.2f}",
            ]
        )
    print(f"{args.cell}: {len(labels)} images, threshold {args.threshold:g} (0 = Fake, 1 = Real)\n")
    real_side, fake_side = np.median(sides[labels == 1]), np.median(sides[labels == 0])
    print(f"scored side, median: Real {real_side:.0f} px, Fake {fake_side:.0f} px\n")
    head = ["scored side (px)", "real", "fake", "accuracy", "recall on Real", "recall on Fake", "mean p_fake"]
    print(markdown_table(head, rows))
    auc, pairs = within_band_auc(labels, p_real, bands)
    print(f"\nAUC: {roc_auc_score(labels, p_real):.3f} over all pairs; {auc:.3f} within bands ({pairs:,} pairs)")


if __name__ == "__main__":
    main()
