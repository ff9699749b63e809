"""Where does a detector's score stop deserving trust as inputs get noisier? Adds Gaussian noise at several levels
to a labelled set (as `dfdetect robustness` does, seeded per image), scores every copy, estimates each copy's
noise as `predict` does (the predictor's `input_noise`: `dfdetect.quality.noise_sigma` at its input size), and
prints the detector's accuracy, AUC and mean p_fake per added level and per band of estimated noise
(docs/results.md, section 28):

    python bench/noise_caution.py --model dfdc-lite0-ens --data ../shared/data/dfdc-faces --split Validation \
        --levels 0,1,2,3,4,5,7,10 --clean lfw-faceswap=../shared/data/lfw-faceswap \
        --clean stylegan2-lfw=../shared/data/stylegan2-lfw --faces-file runs/faces-eval.json

`--frame` frames `--data` (a Real/Fake folder, e.g. `stylegan2-lfw`) the default way before the noise is added
(section 29: other sources under noise). `--clean NAME=DIR` sets are only measured, not scored: how often the
caution would fire on unperturbed photos (framed the default way). The suggested limit is the lowest band edge
from which on every band's accuracy lies more than `--drop` below the clean accuracy. No timings.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from dfdetect.data.discovery import load_split
from dfdetect.data.images import load_rgb
from dfdetect.metrics import classification_metrics
from dfdetect.quality import NOISE_CAUTION
from dfdetect.reporting.tables import markdown_table
from dfdetect.robustness import downscale, image_rng, noise
from dfdetect.runtime.factory import load_predictor

sys.path.insert(0, str(Path(__file__).parent))
from sharpness import framed_faces  # bench/sharpness.py, beside this script

REMEDIES = {
    "none": lambda image, estimate: image,
    "half": lambda image, estimate: downscale(image, 0.5, np.random.default_rng(0)),
    "nlmeans": lambda image, estimate: cv2.fastNlMeansDenoisingColored(image, None, 2 * estimate, 2 * estimate, 7, 21),
}
"""Test-time remedies for noisy inputs: HxWx3 uint8 image, its estimated noise -> the image to score."""


def accuracy(labels: np.ndarray, p_real: np.ndarray, threshold: float) -> float:
    """Share called right (Real when p_real >= threshold); unlike classification_metrics, one class is enough."""
    return float(np.mean((p_real >= threshold) == (labels == 1)))


def metrics_row(labels: np.ndarray, p_real: np.ndarray, threshold: float) -> list[str]:
    both = len(set(labels.tolist())) == 2
    auc = f"{classification_metrics(labels, p_real, threshold)['auc']:.3f}" if both else "-"
    return [str(len(labels)), f"{accuracy(labels, p_real, threshold):.3f}", auc, f"{np.mean(1 - p_real):.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("dfdc-lite0-ens"))
    parser.add_argument("--data", type=Path, required=True, help="dataset root (with --split) or Real/Fake folder")
    parser.add_argument("--split", default="Validation")
    parser.add_argument("--levels", default="0,1,2,3,4,5,7,10", help="added noise sigmas (grey levels)")
    parser.add_argument("--bands", default="0,1,1.5,2,2.5,3,4,5,7", help="lower edges of the estimated-noise bands")
    parser.add_argument("--drop", type=float, default=0.05, help="accuracy drop that makes a band unreliable")
    parser.add_argument("--clean", action="append", default=[], metavar="NAME=DIR", help="a set only measured")
    parser.add_argument("--faces-file", type=Path, help="faces found before, for framing the --clean sets")
    parser.add_argument(
        "--frame",
        action="store_true",
        help="frame --data (a Real/Fake folder) the default way (auto) before adding noise, as predict frames photos",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--remedy",
        default="none",
        help="comma-separated, the first for the bands: what is done before scoring to an image noisier than the "
        "caution limit: none, half (down to half its size and back), nlmeans (OpenCV's non-local means, strength "
        "twice the estimate)",
    )
    args = parser.parse_args()

    predictor = load_predictor(args.model)
    if args.frame:
        faces, labels = framed_faces(args.data, args.faces_file)
        images = [np.asarray(face) for face in faces]
    else:
        samples, _ = load_split(args.data, args.split, one_class=True)
        images = [np.asarray(load_rgb(sample.path)) for sample in samples]
        labels = np.array([sample.label for sample in samples])
    levels = [float(level) for level in args.levels.split(",")]
    threshold = predictor.threshold

    remedies = [name.strip() for name in args.remedy.split(",")]
    if unknown := set(remedies) - set(REMEDIES):
        raise SystemExit(f"unknown remedy {sorted(unknown)}; known: {', '.join(REMEDIES)}")
    estimates, scores = [], []
    level_rows = []
    for l_index, sigma in enumerate(levels):
        noisy = [
            image if sigma == 0 else noise(image, sigma, image_rng(args.seed, 0, l_index, index))
            for index, image in enumerate(images)
        ]
        estimate = np.array([predictor.input_noise(Image.fromarray(image)) for image in noisy])
        band = f"{np.median(estimate):.2f} [{np.percentile(estimate, 5):.2f}, {np.percentile(estimate, 95):.2f}]"
        for remedy in remedies:
            pil = [
                Image.fromarray(REMEDIES[remedy](image, value) if value > NOISE_CAUTION else image)
                for image, value in zip(noisy, estimate, strict=True)
            ]
            p_real = np.concatenate([predictor.predict_images(pil[i : i + 64]) for i in range(0, len(pil), 64)])
            if remedy == remedies[0]:
                estimates.append(estimate)
                scores.append(p_real)
            level_rows.append([f"{sigma:g}", band, remedy, *metrics_row(labels, p_real, threshold)[1:]])
        print(f"level {sigma:g} done", file=sys.stderr, flush=True)

    print(f"{predictor.model_label} on {args.data}/{args.split}, threshold {threshold:.3f} (0 = Fake, 1 = Real)\n")
    print("Per added noise level (estimate: median [5th, 95th percentile]; remedy: what was done before scoring to")
    print(f"the images whose estimate exceeds {NOISE_CAUTION:g}):\n")
    head = ["added sigma", "estimated noise", "remedy", "accuracy", "AUC", "mean p_fake"]
    print(markdown_table(head, level_rows))

    estimate_all, p_all = np.concatenate(estimates), np.concatenate(scores)
    labels_all = np.tile(labels, len(levels))
    clean_accuracy = accuracy(labels, scores[0], threshold)
    edges = [float(edge) for edge in args.bands.split(",")] + [np.inf]
    band_rows, unreliable = [], []
    for low, high in itertools.pairwise(edges):
        inside = (estimate_all >= low) & (estimate_all < high)
        if not inside.any():
            continue
        row = metrics_row(labels_all[inside], p_all[inside], threshold)
        band_rows.append([f"[{low:g}, {high:g})", *row])
        unreliable.append((low, float(row[1]) < clean_accuracy - args.drop))
    pooled = f"all levels pooled, remedy {remedies[0]} (clean accuracy {clean_accuracy:.3f})"
    print(f"\nPer band of estimated noise, {pooled}:\n")
    print(markdown_table(["estimated noise", "images", "accuracy", "AUC", "mean p_fake"], band_rows))
    limit = next(
        (low for i, (low, _) in enumerate(unreliable) if all(flag for _, flag in unreliable[i:])), float("inf")
    )
    print(f"\nsuggested limit: {limit:g} (every band from it on more than {args.drop} below clean accuracy); ", end="")
    print(f"dfdetect.quality.NOISE_CAUTION is {NOISE_CAUTION:g}")

    if args.clean:
        clean_rows = []
        for entry in args.clean:
            name, _, folder = entry.partition("=")
            faces, _ = framed_faces(Path(folder), args.faces_file)
            estimate = np.array([predictor.input_noise(face) for face in faces])
            clean_rows.append(
                [
                    name,
                    str(len(faces)),
                    f"{np.median(estimate):.2f}",
                    f"{np.percentile(estimate, 95):.2f}",
                    f"{np.mean(estimate > limit):.3f}",
                    f"{np.mean(estimate > NOISE_CAUTION):.3f}",
                ]
            )
        print("\nUnperturbed sets, framed the default way (share of faces above each limit):\n")
        head = ["set", "faces", "median", "95th percentile", "above suggested", f"above {NOISE_CAUTION:g}"]
        print(markdown_table(head, clean_rows))


if __name__ == "__main__":
    main()
