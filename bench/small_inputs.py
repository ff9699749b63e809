"""Down to what size does a detector's score deserve trust? Brings every image of a labelled set down to a
smaller side (bicubic, antialiased, as a camera or a resize would have made it small), hands the small image to
the predictor as `predict` would (its preprocessing brings it back up to the input size), and prints accuracy at
the detector's threshold, AUC, recall on each class and mean p_fake per side, and 1 - EER: the recall on each
class at the threshold that makes the two equal, refitted to that side's own scores (so about what a threshold
that followed the input's size could recover at most; docs/results.md, section 32):

    python bench/small_inputs.py --model dfdc-lite0-ens --data ../shared/data/dfdc-faces --split Validation \
        --sides 224,112,64,48,40,32,24,16,8

The suggested limit is the smallest side that still holds above every side whose accuracy lies more than `--drop`
below the accuracy at the set's own size: inputs (or cut faces) smaller than it deserve a caution, as
`dfdetect.quality.SMALL_CAUTION` gives them. 0 = Fake, 1 = Real. No timings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from dfdetect.data.discovery import load_split
from dfdetect.data.images import load_rgb
from dfdetect.metrics import classification_metrics
from dfdetect.quality import SMALL_CAUTION
from dfdetect.reporting.tables import markdown_table
from dfdetect.runtime.factory import load_predictor


def shrunk(image: Image.Image, side: int) -> Image.Image:
    """The image with its shorter side brought down to `side` pixels (aspect kept); larger sides leave it as it is."""
    if min(image.size) <= side:
        return image
    scale = side / min(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)


def suggested_limit(sides: list[int], accuracies: list[float], drop: float) -> int:
    """The smallest side that still holds above every side that does not (accuracy more than `drop` below the
    first side's, the unshrunk set's): inputs smaller than it deserve a caution. 0 when the smallest side holds."""
    clean, failed = accuracies[0], False
    for index in np.argsort(sides):  # ascending
        if accuracies[index] < clean - drop:
            failed = True
        elif failed:
            return sides[index]
        else:
            return 0
    return max(sides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("dfdc-lite0-ens"))
    parser.add_argument("--data", type=Path, required=True, help="dataset root (with --split) or Real/Fake folder")
    parser.add_argument("--split", default="Validation")
    parser.add_argument("--sides", default="224,112,64,48,40,32,24,16,8", help="shorter sides, the first unshrunk")
    parser.add_argument("--drop", type=float, default=0.05, help="accuracy drop that makes a side unreliable")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    predictor = load_predictor(args.model)
    samples, _ = load_split(args.data, args.split, one_class=True)
    images = [load_rgb(sample.path) for sample in samples]
    labels = np.array([sample.label for sample in samples])
    sides = [int(side) for side in args.sides.split(",")]
    threshold = predictor.threshold

    rows, accuracies = [], []
    for side in sides:
        small = [shrunk(image, side) for image in images]
        p_real = np.concatenate(
            [predictor.predict_images(small[i : i + args.batch_size]) for i in range(0, len(small), args.batch_size)]
        )
        m = classification_metrics(labels, p_real, threshold)
        accuracies.append(m["accuracy"])
        rows.append(
            [
                str(side),
                f"{m['accuracy']:.3f}",
                f"{m['auc']:.3f}",
                f"{m['sensitivity']:.3f}",
                f"{m['specificity']:.3f}",
                f"{np.mean(1 - p_real):.2f}",
                f"{1 - m['eer']:.3f}",
            ]
        )
        print(f"side {side} done", file=sys.stderr, flush=True)

    print(f"{predictor.model_label} on {args.data}/{args.split}, threshold {threshold:.3f} (0 = Fake, 1 = Real)\n")
    head = ["shorter side (px)", "accuracy", "AUC", "recall on Real", "recall on Fake", "mean p_fake", "1 - EER"]
    print(markdown_table(head, rows))
    limit = suggested_limit(sides, accuracies, args.drop)
    reason = f"the sides below it more than {args.drop} below the first side's accuracy"
    print(f"\nsuggested limit: {limit} px ({reason}); dfdetect.quality.SMALL_CAUTION is {SMALL_CAUTION} px")


if __name__ == "__main__":
    main()
