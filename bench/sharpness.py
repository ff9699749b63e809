"""Is sharpness a shortcut? How well a face's sharpness alone tells Real from Fake in each set, how the detectors'
scores follow it, what resampling every face through a lower resolution does, and what training-time sharpness
balancing (`--set augment.balance_sharpness_p=P`) leaves of the cue on Train (docs/results.md, section 18), and
how sharp each pseudo-fake maker's fakes are against the reals they were made from (`--pseudo-fakes`, section 21;
`--autoencoder FILE` for the `autoencoder` maker, section 30), and, with `--train` and `--data` both, how many of
each set's faces are softer or sharper than nearly all of Train's (section 34).

    python bench/sharpness.py --data dfdc-val=../shared/data/dfdc-faces/Validation \
        --data lfw-faceswap=../shared/data/lfw-faceswap --data stylegan2-lfw=../shared/data/stylegan2-lfw \
        --model dfdc-lite0 --resample 96,64 --train ../shared/data/dfdc-faces/Train --balance 0,0.2,0.3

Each image is framed as `dfdetect evaluate` frames it by default (auto: a loosely framed photo is cut to its largest
face), or as `--crop-mode always --face-margin M` ask. Sharpness is the variance of the Laplacian of the framed face
resized to 128 px; "sharpness AUC" ranks by it with Real as the positive class (above 0.5: the sharper face tends to
be the real one). No timings: the numbers do not depend on what else runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from dfdetect.data.autoencoder import reconstructors
from dfdetect.data.discovery import list_samples
from dfdetect.data.images import DEFAULT_MAX_PIXELS, load_rgb
from dfdetect.data.pseudo_fakes import TRAINED, make_pseudo_fake, parse_makers
from dfdetect.data.sharpness import balance_sharpness, laplacian_variance
from dfdetect.faces import DEFAULT_MARGIN, FaceCropper
from dfdetect.reporting.tables import markdown_table
from dfdetect.runtime.factory import load_predictor

SIZE = 128
"""Side the framed face is resized to before its sharpness is measured."""


def framed_faces(
    folder: Path, faces_file: Path | None = None, mode: str = "auto", margin: float = DEFAULT_MARGIN
) -> tuple[list[Image.Image], np.ndarray]:
    """Every image of a Real/Fake folder framed as `evaluate` frames it (default: auto, the default margin), and
    its labels (1 = Real); `faces_file`: faces found before (`dfdetect evaluate --faces-file`)."""
    samples = list_samples(folder)
    cropper = FaceCropper(mode=mode, margin=margin, faces_file=faces_file)
    boxes = cropper.boxes_of([s.path for s in samples], DEFAULT_MAX_PIXELS)
    images = []
    for sample in samples:
        image, box = load_rgb(sample.path), boxes[sample.path]
        images.append(image.crop(box) if box is not None else image)
    return images, np.array([s.label for s in samples])


def sharpness(image: Image.Image) -> float:
    return laplacian_variance(np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)))


def resampled(image: Image.Image, side: int | None) -> Image.Image:
    """The face brought down to `side` pixels (when larger); the model's preprocessing brings it back up."""
    return image if side is None or image.width <= side else image.resize((side, side), Image.BICUBIC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", default=[], metavar="NAME=DIR", help="a Real/Fake folder")
    parser.add_argument("--model", action="append", default=[], metavar="[NAME=]MODEL")
    parser.add_argument("--resample", default="", help="comma-separated sides to resample every face through")
    parser.add_argument("--train", type=Path, help="a Train Real/Fake folder, for the balancing table")
    parser.add_argument("--balance", default="0,0.2", help="comma-separated balance_sharpness_p values")
    parser.add_argument("--sample", type=int, default=600, help="Train images per class for the balancing table")
    parser.add_argument(
        "--pseudo-fakes", default="", help="comma-separated makers: how sharp their pseudo-fakes of Train's reals are"
    )
    parser.add_argument("--autoencoder", type=Path, help="the trained auto-encoder the `autoencoder` maker uses")
    parser.add_argument("--crop-mode", default="auto", choices=("auto", "always"), help="framing, as in evaluate")
    parser.add_argument("--face-margin", type=float, default=DEFAULT_MARGIN, help="crop margin, as in evaluate")
    parser.add_argument("--faces-file", type=Path, help="faces found before (dfdetect evaluate --faces-file)")
    args = parser.parse_args()

    sides = [None] + [int(side) for side in args.resample.split(",") if side]
    sets = {}
    for entry in args.data:
        name, _, folder = entry.rpartition("=")
        sets[name or folder] = framed_faces(Path(folder), args.faces_file, args.crop_mode, args.face_margin)
    sharp = {name: np.array([sharpness(image) for image in images]) for name, (images, _) in sets.items()}
    rows = []
    for name, (images, labels) in sets.items():
        widths = np.array([image.width for image in images])
        rows.append(
            [name, len(labels), f"{roc_auc_score(labels, sharp[name]):.3f}"]
            + [f"{np.median(widths[labels == label]):.0f}" for label in (1, 0)]
        )
    if rows:
        print(markdown_table(["set", "images", "sharpness AUC", "face side px, Real", "Fake"], rows), flush=True)

    for entry in args.model:
        name, _, model = entry.rpartition("=")
        predictor = load_predictor(Path(model), device="cpu")
        rows = []
        for set_name, (images, labels) in sets.items():
            row = [name or model, set_name]
            for side in sides:
                faces = [resampled(image, side) for image in images]
                scores = np.concatenate([predictor.score_images(faces[i : i + 64]) for i in range(0, len(faces), 64)])
                if side is None:
                    row.append(f"{np.corrcoef(np.log(sharp[set_name] + 1e-6), scores)[0, 1]:+.2f}")
                row.append(f"{roc_auc_score(labels, scores):.3f}")
            rows.append(row)
            print(f"{name or model} on {set_name}: done", file=sys.stderr, flush=True)  # progress; tables on stdout
        print(markdown_table(header(sides), rows), flush=True)

    if args.train:
        rng = np.random.default_rng(0)
        train = list_samples(args.train)
        by_class = {label: [s.path for s in train if s.label == label] for label in (1, 0)}
        paths = [path for label in (1, 0) for path in rng.choice(by_class[label], args.sample, replace=False)]
        labels = np.array([1] * args.sample + [0] * args.sample)
        originals = [load_rgb(path) for path in paths]  # Real first, then Fake
        faces = [np.asarray(image.resize((SIZE, SIZE), Image.BICUBIC)) for image in originals]
        rows = []
        for p in [float(value) for value in args.balance.split(",")]:
            generator = np.random.default_rng(1)
            balanced = [
                laplacian_variance(balance_sharpness(f, int(y), p, generator))
                for f, y in zip(faces, labels, strict=True)
            ]
            rows.append([p, len(labels), f"{roc_auc_score(labels, balanced):.3f}"])
        print(markdown_table(["balance_sharpness_p", "Train images", "sharpness AUC"], rows), flush=True)

        if sets:  # how many of each set's faces lie outside the sharpness Train's faces span (1st-99th percentile)
            low, high = np.percentile([laplacian_variance(face) for face in faces], [1, 99])
            rows = []
            for name, (_, labels_of_set) in sets.items():
                shares = []
                for label in (1, 0):
                    values = sharp[name][labels_of_set == label]
                    shares += [f"{np.mean(values < low):.3f}", f"{np.mean(values > high):.3f}"]
                rows.append([name, *shares])
            header_row = ["set", "Real softer", "Real sharper", "Fake softer", "Fake sharper"]
            span = f"{low:.1f}-{high:.1f} at {SIZE} px"
            print(f"share of faces outside Train's 1st-99th percentile of sharpness ({span})")
            print(markdown_table(header_row, rows), flush=True)

        if args.pseudo_fakes:  # Train's sampled reals against pseudo-fakes made from them, and against its fakes
            reals = originals[: args.sample]
            candidates = {"the set's own fakes": originals[args.sample :]}
            trained = reconstructors(args.autoencoder, TRAINED) if args.autoencoder else {}
            for maker in parse_makers(args.pseudo_fakes):
                generator = np.random.default_rng(1)
                made = [make_pseudo_fake(np.asarray(real), [maker], generator, trained=trained) for real in reals]
                candidates[f"`{maker}` pseudo-fakes"] = [Image.fromarray(image) for image in made]
            rows = []
            for name, fakes in candidates.items():
                versus = reals + fakes
                y = [1] * len(reals) + [0] * len(fakes)
                at_size = [sharpness(image) for image in versus]
                at_own = [laplacian_variance(np.asarray(image)) for image in versus]
                rows.append([name, f"{roc_auc_score(y, at_size):.3f}", f"{roc_auc_score(y, at_own):.3f}"])
            print(markdown_table(["fakes (against Train's reals)", f"sharpness AUC at {SIZE} px", "at own size"], rows))


def header(sides: list[int | None]) -> list[str]:
    return ["model", "set", "corr(score, log sharpness)", "AUC"] + [f"AUC through {side} px" for side in sides[1:]]


if __name__ == "__main__":
    main()
