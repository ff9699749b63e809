"""Which networks to ensemble: every combination's AUC from per-image scores already computed, without scoring again.

    dfdetect ensemble --model dfdc-lite0-ens#0 --tta hflip --out runs/tta-s       # one folder per network
    dfdetect evaluate --split Validation --model s=runs/tta-s --model c2=runs/tta-c2 \
        --data dfdc-val=../shared/data/dfdc-faces --data lfw=../shared/data/lfw-faceswap --out runs/xval-tta
    python bench/ensemble_choices.py runs/xval-tta --min-size 2
    python bench/ensemble_choices.py runs/xval-tta --pair tta-c2 tta-s --step 0.05 --upto 0.5

With `--pair A B` it prints instead the weighted mean logit (1 - w) A + w B for w from 0 to `--upto` (what
`dfdetect ensemble --weights` scores), so a network's say in a pair can be chosen on these sets.

`dfdetect ensemble` scores the mean logit of its networks over its views, so the ensemble of networks that were each
evaluated with the same test-time flips (and no calibration) scores each image with the mean of their logits:
this script takes those logits back from every cell's predictions.csv (P(Real) kept to 6 decimals, so logits are
clipped at +-13.8) and prints, for every combination of the networks, its AUC on every set with a 95% bootstrap
interval (stratified, seeded, as `evaluate` computes them). Score the chosen ensemble itself for the record.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from dfdetect.calibration import logit, sigmoid
from dfdetect.experiment import read_per_image
from dfdetect.metrics import bootstrap_intervals, format_interval, interval_metrics
from dfdetect.reporting.tables import markdown_table

CLIP = 1e-6


def read_cell(path: Path) -> dict[str, tuple[int, float]]:
    """path -> (label, logit) from one predictions.csv."""
    paths, labels, p_real = read_per_image(path)
    logits = logit(np.clip(p_real, CLIP, 1 - CLIP))
    return {name: (int(label), float(value)) for name, label, value in zip(paths, labels, logits, strict=True)}


def read_logits(folder: Path) -> tuple[list[str], list[str], dict[str, np.ndarray], dict[tuple[str, str], np.ndarray]]:
    """Networks, sets, labels per set, logits per (network, set), the images in one order for every network."""
    networks = sorted(path.name for path in folder.iterdir() if path.is_dir())
    sets = sorted({path.parent.name for path in folder.glob("*/*/predictions.csv")})
    if not networks or not sets:
        raise SystemExit(f"{folder}: no */*/predictions.csv (run dfdetect evaluate with several --model/--data)")
    labels, logits = {}, {}
    for name in sets:
        cells = {network: read_cell(folder / network / name / "predictions.csv") for network in networks}
        order = sorted(cells[networks[0]])
        for network, cell in cells.items():
            if sorted(cell) != order:
                raise SystemExit(f"{folder / network / name}: other images than {networks[0]}'s")
        labels[name] = np.array([cells[networks[0]][path][0] for path in order])
        for network, cell in cells.items():
            logits[network, name] = np.array([cell[path][1] for path in order])
    return networks, sets, labels, logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="an evaluate --out folder with several models and sets")
    parser.add_argument("--min-size", type=int, default=1, help="smallest combination to list")
    parser.add_argument("--pair", nargs=2, metavar=("A", "B"), help="weigh B against A instead of combining all")
    parser.add_argument("--step", type=float, default=0.05, help="with --pair: step of B's weight")
    parser.add_argument("--upto", type=float, default=0.5, help="with --pair: largest weight of B")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    networks, sets, labels, logits = read_logits(args.folder)

    def cells(weighted: dict[str, float]) -> list[str]:
        row = []
        for name in sets:
            scores = sigmoid(sum(weight * logits[network, name] for network, weight in weighted.items()))
            auc = interval_metrics(labels[name], scores, 0.5)["auc"]
            interval = bootstrap_intervals(labels[name], scores, resamples=args.resamples, keys=("auc",))["auc"]
            row.append(format_interval(auc, interval))
        return row

    rows = []
    if args.pair:
        first, second = args.pair
        for name in args.pair:
            if name not in networks:
                raise SystemExit(f"{args.folder}: no network {name!r}; found {', '.join(networks)}")
        for step in range(round(args.upto / args.step) + 1):
            weight = round(step * args.step, 6)
            rows.append([f"{1 - weight:g} {first} + {weight:g} {second}", *cells({first: 1 - weight, second: weight})])
        title = "weighted mean logit"
    else:
        for size in range(max(args.min_size, 1), len(networks) + 1):
            for combination in itertools.combinations(networks, size):
                rows.append([" + ".join(combination), *cells(dict.fromkeys(combination, 1 / size))])
        title = "mean logit"
    print(f"AUC of the {title}, 95% intervals ({args.resamples} stratified resamples), from {args.folder}")
    print(markdown_table(["networks", *sets], rows))


if __name__ == "__main__":
    main()
