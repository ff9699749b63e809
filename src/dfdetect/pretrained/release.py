"""Turn a finished run into a shipped detector: fp16 weights, metrics with intervals, example scores, metadata.

Used by tools/package_detector.py. The metrics describe the fp16 weights that ship (loaded back into the fp32
model, as predict and serve load them), not the run's fp32 checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from dfdetect.engine.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from dfdetect.evaluation import score_split
from dfdetect.models.ensemble import ENSEMBLE
from dfdetect.models.router import ROUTED
from dfdetect.pretrained import DEFAULT_DETECTOR
from dfdetect.runtime.torch_backend import TorchPredictor, load_model

logger = logging.getLogger(__name__)


def half_precision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors to fp16 (half the file); integer buffers (BatchNorm's counters) as they are."""
    return {key: value.half() if value.is_floating_point() else value for key, value in state.items()}


def architecture_of(metadata: dict[str, Any]) -> str:
    """The architecture in words: the model name, an ensemble's members and test-time augmentation, or a router's
    two branches."""
    routed = metadata.get(ROUTED)
    if metadata["model"] == ROUTED and routed:
        return (
            f"{architecture_of(routed['primary'])}; inputs with estimated noise above {routed['noise_limit']:g} grey "
            f"levels are scored by {architecture_of(routed['fallback'])} instead"
        )
    spec = metadata.get("ensemble")
    if metadata["model"] != ENSEMBLE or not spec:
        return str(metadata["model"])
    names = [member["model"] for member in spec["members"]]
    weights = spec.get("weights")
    mean = f"logits weighted {' / '.join(f'{weight:g}' for weight in weights)}" if weights else "mean logit"
    text = f"ensemble of {len(names)} ({' + '.join(names)}; {mean})"
    return text + (
        ", each also scoring the mirrored image (hflip test-time augmentation)" if spec["tta"] == "hflip" else ""
    )


def split_report(predictor: TorchPredictor, data: Path, split: str, resamples: int) -> dict[str, Any]:
    """Metrics of one split with 95% stratified bootstrap intervals, at the detector's own threshold."""
    evaluation = score_split(predictor, data, split, workers=0, bootstrap=resamples)
    metrics = dict(evaluation.metrics)
    return {"data": f"{Path(data).name}/{split}", "metrics": metrics, "intervals_95": metrics.pop("intervals_95")}


def package_detector(
    run: Path,
    out_folder: Path,
    name: str,
    version: str,
    release: dict[str, Any],
    data: Path | None = None,
    splits: tuple[str, ...] = ("Validation", "Test"),
    examples: list[Path] | None = None,
    resamples: int = 1000,
) -> Path:
    """Write `out_folder/<name>-<version>.safetensors` (+ .json) from the best checkpoint of `run`.

    `release` holds the card's facts (summary, training data and terms, command); splits of `data` are scored
    with the shipped weights, and so are the `examples`, whose p_fake the package's test checks.
    """
    state, metadata, _ = load_checkpoint(resolve_checkpoint(run))
    shipped_state = half_precision(state)
    out = out_folder / f"{name}-{version}.safetensors"
    model, _ = load_model(run)
    model.load_state_dict(shipped_state)  # fp16 values into the fp32 model: what loading the shipped file gives
    predictor = TorchPredictor(model, metadata, device="cpu")
    info: dict[str, Any] = {
        **release,
        "name": name,
        "version": version,
        "architecture": architecture_of(metadata),
        "input": f"{model.preprocessing.input_size} px RGB, normalised with mean = std = {model.preprocessing.mean[0]}",
        "weights": "fp16",
        "calibration": metadata.get("calibration"),
    }
    if data is not None:
        info["evaluation"] = {split: split_report(predictor, data, split, resamples) for split in splits}
    if examples:
        results = predictor.predict_paths(examples)
        failed = [result.error for result in results if result.error]
        if failed:
            raise ValueError(f"example images failed: {failed}")
        info["examples"] = {Path(result.path).name: result.p_fake for result in results}
    save_checkpoint(out, shipped_state, {**metadata, "release": info})
    logger.info("packaged %s %s from %s into %s", name, version, run, out)
    return out


def model_card(release: dict[str, Any], extra: str = "") -> str:
    """The model card (Markdown) of a packaged detector, from its release metadata; `extra` is appended."""
    from dfdetect.metrics import format_interval
    from dfdetect.quality import SMALL_CAUTION
    from dfdetect.reporting.tables import LABEL_NOTE, markdown_table

    rows = []
    for report in release.get("evaluation", {}).values():
        metrics, intervals = report["metrics"], report["intervals_95"]
        rows.append(
            [
                report["data"],
                metrics["n_real"] + metrics["n_fake"],
                *(
                    format_interval(metrics[key], intervals.get(key))
                    for key in ("auc", "accuracy", "sensitivity", "specificity", "eer")
                ),
                f"{metrics['ece']:.3f}",
                f"{metrics['threshold']:.3f} ({metrics['threshold_policy']})",
            ]
        )
    table = markdown_table(
        ["split", "images", "AUC", "accuracy", "sensitivity", "specificity", "EER", "ECE", "threshold"], rows
    )
    examples = markdown_table(
        ["image (tests/assets/examples/)", "p_fake"],
        [[name, f"{value:.6f}"] for name, value in release.get("examples", {}).items()],
    )
    calibration = release.get("calibration")
    stored = calibration or {}
    own_limit, split = stored.get("small_caution"), stored.get("split", "the calibration split")
    small = (
        f"{SMALL_CAUTION} px on their shorter side with a `caution` (the default limit, measured for the default "
        "detector; docs/results.md, section 32)"
        if own_limit is None
        else f"{own_limit} px on their shorter side with a `caution` (this detector's own limit, measured on "
        f"{split} and stored with its calibration; `--small-caution` moves it)"
    )
    calibrated = (
        f"Probabilities are calibrated: temperature {calibration['temperature']:.4f} fitted on "
        f"{calibration['split']} (ECE {calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f} there); the "
        f"threshold follows the `{calibration['policy']}` policy ({calibration['threshold']:.4f}), also chosen on "
        "Validation."
        if calibration
        else "Probabilities are the network's own (not calibrated); the threshold is the study's 0.5."
    )
    name = release["name"]
    use = (
        f"`dfdetect predict IMAGE...` and `dfdetect serve` use it when no `--model` is given;\n  `dfdetect.load()` "
        f"in Python; `--model {name}` anywhere a run folder is accepted."
        if name == DEFAULT_DETECTOR
        else f"`--model {name}` anywhere a run folder is accepted (`predict`, `serve`, `evaluate`, ...);\n"
        f'  `dfdetect.load("{name}")` in Python.'
    )
    return f"""# Model card: {release["name"]} {release["version"]}

{release.get("summary", "")}

- **Architecture:** {release["architecture"]}, each network as `dfdetect models` describes it (started from
  ImageNet weights where the model has them, with the study's head); input {release.get("input", "")}; fp16
  weights (safetensors) loaded into an fp32 model.
- **Output:** one logit for Real; dfdetect reports `p_fake` = 1 - P(Real). {LABEL_NOTE}
- **Use it:** {use}

## Training data and its terms

{release.get("trained_on", "")}

Terms: {release.get("terms", "")}

## How it was trained

```bash
{release.get("command", "")}
```

{release.get("training_notes", "")}

## Metrics

Scored with the shipped fp16 weights. Brackets: 95% bootstrap intervals (1,000 resamples, stratified by class).
Every choice (recipe, epoch, calibration, threshold) was made on Validation; Test was scored once at the end.

{table}

{calibrated}

## Intended use

Screening face crops from videos or photos for face-swap manipulation, as one signal among others, with a
person reviewing what it flags. Not for deciding anything about a person on its own.

## Known limits

- It sees **face crops** like DFDC's (one face, cropped tightly: about 0.7 of a face detector's box, 224 px).
  `predict`, `serve` and the Python API frame other images that way by default (framing `auto`): a photo
  that shows much more than a face is cut to each face found, the most fake deciding; face crops, and images in
  which no face is found, are scored as they are (`--no-crop-face` scores everything as it is; videos are
  always cropped). On DFDC's own crops `auto` cuts nothing, so the metrics below hold either way.
- It learned **one source of fakes** (the DFDC face swaps). On other generators it may call fakes real; see
  `docs/results.md` for what it scores on other sources.
- DFDC's faces are frames of compressed video; very clean photos, heavy filters, or strong recompression move
  its scores (`dfdetect robustness` measures how far).
- Its score can follow a face's **sharpness** (in DFDC swapped faces are a little softer, so the sharper face
  looks more real): a real face blown up from a small photo may look more fake, a downscaled generated face more
  real (docs/results.md, section 18; sections 22 and 24 measure it for the shipped detectors).
- **Small faces** carry little detail for it to read: `predict`, `serve` and the Python API flag inputs (or cut
  faces) under {small}.
- Probabilities are calibrated on DFDC Validation; on other data they are only as good as that match.

## Check it

The package's tests score these generated or public-domain images (no DFDC face is in the repository) and
compare with the values recorded when it was packaged:

{examples}
{extra}"""
