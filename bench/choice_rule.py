"""Section 28's rule, applied by a script: may a candidate detector replace the default? (docs/results.md,
sections 28 and 29). Reads what `dfdetect evaluate` and `dfdetect robustness` wrote and prints one row per
detector and the verdict; nothing is scored here.

    python bench/choice_rule.py \
        --default dfdc-lite0-ens=runs/xval-c2-s15/c2-s15,runs/robustness-val-dfdc-lite0-ens \
        --candidate routed=runs/xval-route/route,runs/robustness-val-route

Each detector is NAME=EVALUATED,ROBUSTNESS: EVALUATED is the folder of one model in `dfdetect evaluate --split
Validation --data dfdc-val=... --data lfw-faceswap=... --data stylegan2-lfw=... --out OUT` (OUT/NAME, holding
dfdc-val/, lfw-faceswap/ and stylegan2-lfw/ with their metrics.json), ROBUSTNESS the `--out` folder of
`dfdetect robustness --perturbations basic --split Validation` on DFDC (its robustness.json). The rule:

1. DFDC Validation AUC within `--margin` (0.015) of the reference `--reference` (0.972, `dfdc-lite0-ens` 2.0.0);
2. score = mean of (lfw-faceswap AUC, stylegan2-lfw AUC, mean AUC over the perturbed levels) above the
   default's by more than `--gain` (0.005).

A candidate that passes still needs section 24's steps (one DFDC Test scoring, calibration, packaging).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from dfdetect.reporting.tables import markdown_table

SETS = ("dfdc-val", "lfw-faceswap", "stylegan2-lfw")


@dataclass(frozen=True)
class Measured:
    name: str
    auc: dict[str, float]
    perturbed: float
    levels: int

    @property
    def score(self) -> float:
        return (self.auc["lfw-faceswap"] + self.auc["stylegan2-lfw"] + self.perturbed) / 3


def measured(entry: str) -> Measured:
    """NAME=EVALUATED,ROBUSTNESS -> the AUCs the rule reads, or a clear error naming the missing file."""
    name, _, folders = entry.partition("=")
    evaluated, _, robustness = folders.partition(",")
    if not (name and evaluated and robustness):
        raise SystemExit(f"{entry!r}: give NAME=EVALUATED,ROBUSTNESS (two folders)")
    auc = {}
    for data in SETS:
        path = Path(evaluated) / data / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"{name}: {path} not found (dfdetect evaluate with --data {data}=...)")
        auc[data] = float(json.loads(path.read_text())["auc"])
    path = Path(robustness) / "robustness.json"
    if not path.is_file():
        raise SystemExit(f"{name}: {path} not found (dfdetect robustness --out {robustness})")
    table = json.loads(path.read_text())
    levels = [
        level["auc"] for key, entry in table.items() if key not in ("clean", "_meta") for level in entry["levels"]
    ]
    if not levels:
        raise SystemExit(f"{name}: {path} holds no perturbed levels")
    return Measured(name, auc, sum(levels) / len(levels), len(levels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--default", required=True, metavar="NAME=EVALUATED,ROBUSTNESS")
    parser.add_argument("--candidate", action="append", required=True, metavar="NAME=EVALUATED,ROBUSTNESS")
    parser.add_argument("--reference", type=float, default=0.972, help="DFDC Validation AUC the margin is from")
    parser.add_argument("--margin", type=float, default=0.015)
    parser.add_argument("--gain", type=float, default=0.005)
    args = parser.parse_args()

    default = measured(args.default)
    floor = args.reference - args.margin
    rows = []
    for entry in [default, *(measured(candidate) for candidate in args.candidate)]:
        inside = entry.auc["dfdc-val"] >= floor
        gain = entry.score - default.score
        if entry is default:
            verdict = "the default"
        elif not inside:
            verdict = f"no: DFDC Validation below {floor:.3f}"
        elif gain <= args.gain:
            verdict = f"no: score gain {gain:+.4f} is not above {args.gain:g}"
        else:
            verdict = "yes: score Test once (section 24's steps)"
        rows.append(
            [
                entry.name,
                f"{entry.auc['dfdc-val']:.4f}",
                f"{entry.auc['lfw-faceswap']:.4f}",
                f"{entry.auc['stylegan2-lfw']:.4f}",
                f"{entry.perturbed:.4f} ({entry.levels})",
                f"{entry.score:.4f}",
                f"{gain:+.4f}",
                verdict,
            ]
        )
    head = ["detector", "DFDC Val", "lfw-faceswap", "stylegan2-lfw", "perturbed (levels)", "score", "gain", "replaces"]
    print(markdown_table(head, rows))
    print(f"\nrule: DFDC Validation AUC >= {args.reference:g} - {args.margin:g}; score gain > {args.gain:g}")


if __name__ == "__main__":
    main()
