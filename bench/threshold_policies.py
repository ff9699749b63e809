"""Which threshold carries to other sources? Scores a detector once on the split its threshold is chosen on and on
other labelled sets, picks each threshold policy's threshold on the first set's calibrated scores
(`dfdetect.calibration.threshold_for`: eer, balanced, cost:C for each C of `--costs`, and the detector's own stored
one), and prints, per policy, the threshold and accuracy / recall on Real / recall on Fake on every set; AUC per
set once (a threshold does not move it). docs/results.md, section 33:

    python bench/threshold_policies.py --model dfdc-lite0-ens --choose dfdc-val=../shared/data/dfdc-faces \
        --data lfw-faceswap=../shared/data/lfw-faceswap --data stylegan2-lfw=../shared/data/stylegan2-lfw \
        --faces-file runs/faces-eval.json

Every set is framed as `evaluate` frames it (`auto`: loosely framed images cut to their largest face). The
suggested cost is the largest on the grid whose accuracy on the first set stays within `--tolerance` of the
`eer` threshold's: the most weight on false alarms that the in-domain split does not pay for. 0 = Fake, 1 = Real.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dfdetect.calibration import threshold_for
from dfdetect.cli import named_paths
from dfdetect.evaluation import score_split
from dfdetect.faces import DEFAULT_MARGIN, face_cropper
from dfdetect.metrics import classification_metrics
from dfdetect.reporting.tables import markdown_table
from dfdetect.runtime.torch_backend import TorchPredictor


def suggested_cost(costs: list[float], accuracies: list[float], reference: float, tolerance: float) -> float | None:
    """The largest cost whose accuracy on the choosing set stays within `tolerance` of `reference` (None if none)."""
    kept = [cost for cost, accuracy in zip(costs, accuracies, strict=True) if accuracy >= reference - tolerance]
    return max(kept) if kept else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("dfdc-lite0-ens"))
    parser.add_argument("--choose", required=True, help="NAME=DIR whose --split the thresholds are chosen on")
    parser.add_argument("--split", default="Validation")
    parser.add_argument("--data", action="append", default=[], help="NAME=DIR, a Real/Fake folder (repeatable)")
    parser.add_argument("--costs", default="1,1.25,1.5,1.75,2,2.5,3,4")
    parser.add_argument("--tolerance", type=float, default=0.005, help="accuracy the choosing set may give up")
    parser.add_argument("--faces-file", type=Path, help="faces found before (as evaluate --faces-file)")
    parser.add_argument("--face-margin", type=float, default=DEFAULT_MARGIN)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()

    predictor = TorchPredictor.from_checkpoint(args.model, device="cpu")
    crop = face_cropper("auto", margin=args.face_margin, faces_file=args.faces_file)
    [(choose_name, choose_dir)] = named_paths([args.choose], "choose").items()
    sets = {choose_name: (choose_dir, args.split), **{n: (d, "") for n, d in named_paths(args.data, "data").items()}}
    scored = {}
    for name, (folder, split) in sets.items():
        evaluation = score_split(predictor, folder, split, workers=args.workers, face_crop=crop)
        scored[name] = (np.asarray(evaluation.labels).astype(int), np.asarray(evaluation.scores))
    labels, p_real = scored[choose_name]
    costs = [float(cost) for cost in args.costs.split(",")]
    policies = {f"stored ({predictor.threshold_policy})": predictor.threshold}
    policies |= {policy: threshold_for(policy, labels, p_real) for policy in ("eer", "balanced")}
    policies |= {f"cost:{cost:g}": threshold_for(f"cost:{cost:g}", labels, p_real) for cost in costs}

    header = ["policy", "threshold"] + [f"{name}: acc / rec Real / rec Fake" for name in scored]
    rows, accuracy_on_choice = [], {}
    for policy, threshold in policies.items():
        cells = []
        for name, (y, p) in scored.items():
            m = classification_metrics(y, p, threshold)
            cells.append(f"{m['accuracy']:.3f} / {m['sensitivity']:.3f} / {m['specificity']:.3f}")
            if name == choose_name:
                accuracy_on_choice[policy] = m["accuracy"]
        rows.append([policy, f"{threshold:.4f}", *cells])
    print(f"{predictor.model_label}: thresholds chosen on {choose_name} {args.split} (calibrated P(Real))\n")
    print(markdown_table(header, rows))
    aucs = {name: classification_metrics(y, p, 0.5)["auc"] for name, (y, p) in scored.items()}
    print("\nAUC: " + ", ".join(f"{name} {auc:.3f}" for name, auc in aucs.items()))
    cost_accuracies = [accuracy_on_choice[f"cost:{cost:g}"] for cost in costs]
    best = suggested_cost(costs, cost_accuracies, accuracy_on_choice["eer"], args.tolerance)
    print(f"suggested: cost:{best:g}" if best is not None else "suggested: none (every cost loses accuracy there)")
    print("0 = Fake, 1 = Real; recall on Real = sensitivity, recall on Fake = specificity")


if __name__ == "__main__":
    main()
