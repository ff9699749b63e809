"""Frozen features and a linear probe: do a network's features, left as they are, carry to other sources of fakes
better than the network trained end to end on DFDC? (docs/results.md, section 26)

UniversalFakeDetect (Ojha et al., CVPR 2023) found that a linear probe on the frozen features of a network never
trained to detect fakes generalises to unseen generators far better than a detector trained end to end, which learns
its training generator's look. CLIP's weights cannot be had here; this measures the same idea with the networks we
have: the ImageNet EfficientNet-Lite0 (never saw a fake) and members of the shipped detectors.

    python bench/frozen_probe.py --train ../shared/data/dfdc-faces --per-class 1000 \
        --data dfdc-val=../shared/data/dfdc-faces/Validation --data lfw-faceswap=../shared/data/lfw-faceswap \
        --data stylegan2-lfw=../shared/data/stylegan2-lfw --faces-file runs/faces-eval.json \
        --backbone imagenet --backbone s=dfdc-lite0-ens#1 --backbone c2=dfdc-lite0-ens#0 \
        --pseudo-fakes sbi-landmarks,upsample --landmarks runs/landmarks-dfdc-train.json --resample 64

Each backbone's features of an image: the global average (and standard deviation) of every stage's feature map,
grouped as early stages (1-3: edges, texture, the scale blending and up-sampling traces live at), late stages (4-7)
and the pooled head features the detector's own head reads. The probe, a logistic regression on standardised
features, learns from `--per-class` of Train's reals against as many of its fakes (and, with `--pseudo-fakes`, as
many pseudo-fakes made from other Train reals on top); its strength C is chosen on the first `--data` set (DFDC
Validation). Each cell: AUC with Real as the positive class and a 95% interval (1,000 stratified resamples). For a
trained backbone the row "own head" is the detector itself (no flip), the end-to-end baseline. The eval sets are
framed as `dfdetect evaluate` frames them (auto); Train's images are the dataset's own crops, as training sees them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sharpness import framed_faces, resampled  # bench/sharpness.py, beside this script
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dfdetect.calibration import sigmoid
from dfdetect.data.discovery import list_samples
from dfdetect.data.images import load_rgb
from dfdetect.data.landmarks import read_landmarks
from dfdetect.data.pseudo_fakes import make_pseudo_fake, parse_makers
from dfdetect.data.transforms import build_eval_transform
from dfdetect.ensembles import members_of
from dfdetect.metrics import bootstrap_intervals, format_interval
from dfdetect.models.detector import Detector
from dfdetect.models.factory import create_model
from dfdetect.reporting.tables import markdown_table

BATCH = 64
STRENGTHS = (1e-3, 1e-2, 1e-1, 1.0)
"""Inverse regularisation strengths C the probe is chosen among, on the first eval set."""
GROUPS = {"early stages (1-3)": (0, 1, 2), "late stages (4-7)": (3, 4, 5, 6), "head features": ("head",)}


def backbone(spec: str) -> tuple[str, Detector]:
    """`imagenet` (EfficientNet-Lite0 with its ImageNet weights, never trained on fakes) or `NAME=MODEL`, one
    network of a checkpoint or package (`dfdc-lite0-ens#1`)."""
    if spec == "imagenet":
        return spec, create_model("efficientnet_lite0", pretrained=True)
    name, _, source = spec.rpartition("=")
    networks = members_of(Path(source))
    if len(networks) != 1:
        raise SystemExit(f"{source}: an ensemble of {len(networks)} networks; pick one with {source}#N")
    return name or source, networks[0][0]


@torch.inference_mode()
def features(network: Detector, images: Sequence[Image.Image]) -> dict[int | str, np.ndarray]:
    """Per stage, [mean, std] of its feature map over space; "head": the pooled features; "logit": the detector's
    own output (meaningless for the ImageNet backbone, whose head is untrained)."""
    network.eval()
    stages = getattr(getattr(network.backbone, "network", None), "blocks", None)  # timm EfficientNet: 7 stages
    if stages is None:
        raise SystemExit(f"{network.name}: not an EfficientNet-family network; this bench reads its seven stages")
    captured: dict[int, torch.Tensor] = {}
    hooks = [
        stage.register_forward_hook(lambda _m, _i, out, index=index: captured.__setitem__(index, out))
        for index, stage in enumerate(stages)
    ]
    transform = build_eval_transform(network.preprocessing)
    parts: dict[int | str, list[np.ndarray]] = {}
    try:
        for start in range(0, len(images), BATCH):
            batch = torch.stack([transform(image.convert("RGB")) for image in images[start : start + BATCH]])
            pooled = network.forward_features(batch)
            found: dict[int | str, torch.Tensor] = {
                index: torch.cat([out.mean((2, 3)), out.std((2, 3))], 1) for index, out in captured.items()
            }
            found["head"], found["logit"] = pooled, network.head(pooled)
            for key, value in found.items():
                parts.setdefault(key, []).append(value.float().numpy())
    finally:
        for hook in hooks:
            hook.remove()
    return {key: np.concatenate(value) for key, value in parts.items()}


def stacked(table: dict[int | str, np.ndarray], keys: Sequence[int | str]) -> np.ndarray:
    return np.concatenate([table[key] for key in keys], 1)


def cell(labels: np.ndarray, scores: np.ndarray) -> str:
    auc = float(roc_auc_score(labels, scores))
    return format_interval(round(auc, 3), bootstrap_intervals(labels, sigmoid(scores), keys=("auc",))["auc"])


def probe(
    train_x: np.ndarray, train_y: np.ndarray, choice_x: np.ndarray, choice_y: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """The logistic regression (its logit of Real) whose strength C gives the best AUC on the choice set."""
    best, best_auc = None, -1.0
    for strength in STRENGTHS:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=2000))
        model.fit(train_x, train_y)
        auc = float(roc_auc_score(choice_y, model.decision_function(choice_x)))
        logging.info("C %g: AUC %.3f on the choice set", strength, auc)
        if auc > best_auc:
            best, best_auc = model.decision_function, auc
    assert best is not None
    return best


def train_images(root: Path, per_class: int, makers: list[str], landmarks: Path | None, seed: int):
    """`per_class` reals and fakes of root/Train, and as many pseudo-fakes made from other reals."""
    rng = np.random.default_rng(seed)
    samples = list_samples(root / "Train")
    reals = [s.path for s in samples if s.label == 1]
    fakes = [s.path for s in samples if s.label == 0]
    picked_reals = rng.choice(len(reals), 2 * per_class, replace=False)
    real_paths = [reals[i] for i in picked_reals[:per_class]]
    source_paths = [reals[i] for i in picked_reals[per_class:]]
    fake_paths = [fakes[i] for i in rng.choice(len(fakes), per_class, replace=False)]
    table = read_landmarks(landmarks, root) if landmarks else {}
    pseudo = []
    generator = np.random.default_rng(seed + 1)
    for path in source_paths if makers else []:
        image = np.asarray(load_rgb(path))
        pseudo.append(Image.fromarray(make_pseudo_fake(image, makers, generator, lambda _i, p=path: table.get(p))))
    return [load_rgb(p) for p in real_paths], [load_rgb(p) for p in fake_paths], pseudo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="dataset root with Train/Real and Train/Fake")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--data", action="append", required=True, metavar="NAME=DIR", help="an eval Real/Fake folder")
    parser.add_argument("--faces-file", type=Path, help="faces found before (dfdetect evaluate --faces-file)")
    parser.add_argument("--backbone", action="append", required=True, help="imagenet, or NAME=MODEL")
    parser.add_argument("--pseudo-fakes", default="", help="comma-separated makers for the second probe")
    parser.add_argument("--landmarks", type=Path, help="landmarks of Train's reals (for sbi-landmarks)")
    parser.add_argument("--resample", type=int, help="also score the last set with every face through this side")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)

    makers = parse_makers(args.pseudo_fakes)
    reals, fakes, pseudo = train_images(args.train, args.per_class, makers, args.landmarks, args.seed)
    sets = {}
    for entry in args.data:
        name, _, folder = entry.rpartition("=")
        sets[name or folder] = framed_faces(Path(folder), args.faces_file)
    if args.resample:
        last, (images, labels) = list(sets.items())[-1]
        sets[f"{last} through {args.resample} px"] = ([resampled(image, args.resample) for image in images], labels)
    choice_set = next(iter(sets))
    logging.info(
        "train: %d reals, %d fakes, %d pseudo-fakes; sets: %s", len(reals), len(fakes), len(pseudo), list(sets)
    )

    probes = {"DFDC fakes": (reals + fakes, [1] * len(reals) + [0] * len(fakes))}
    if pseudo:
        probes[f"+ {args.pseudo_fakes}"] = (reals + fakes + pseudo, [1] * len(reals) + [0] * (len(fakes) + len(pseudo)))
    rows = []
    for spec in args.backbone:
        name, network = backbone(spec)
        train_feats = features(network, reals + fakes + pseudo)
        set_feats = {set_name: features(network, images) for set_name, (images, _) in sets.items()}
        logging.info("%s: features done", name)
        if name != "imagenet":
            rows.append(
                [name, "own head (end to end)", "-"]
                + [cell(labels, set_feats[s]["logit"][:, 0]) for s, (_, labels) in sets.items()]
            )
        for group, keys in GROUPS.items():
            for probe_name, (images, y) in probes.items():
                x = stacked(train_feats, keys)[: len(images)]
                scorer = probe(x, np.array(y), stacked(set_feats[choice_set], keys), sets[choice_set][1])
                rows.append(
                    [name, group, probe_name]
                    + [cell(labels, scorer(stacked(set_feats[s], keys))) for s, (_, labels) in sets.items()]
                )
                print(f"{name} {group} {probe_name}: done", file=sys.stderr, flush=True)
    print(markdown_table(["backbone", "features", "probe trained on", *sets], rows), flush=True)


if __name__ == "__main__":
    main()
