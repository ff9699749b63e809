"""`dfdetect ensemble` and `dfdetect route`: trained detectors (or one, with test-time flips) combined into one
checkpoint.

The result is a run folder like a training run's (`checkpoints/best.safetensors` + `.json`), so calibrate,
evaluate, predict, serve, export and tools/package_detector.py take it as they take a single network. Calibration
is not carried over from the members: the averaged logit is a new score, so calibrate the ensemble itself.

An ensemble given as a member is taken apart: all its networks join (so the shipped default can be extended with a
network of one's own), or with `SOURCE#N` network N alone (so one of its networks can be paired with another).
`weights` weigh the networks' logits (one per network, in the order they are gathered; normalised to sum to 1), so
a network that is strong in-domain can be given a small say beside one that generalises (docs/results.md,
section 24); an ensemble taken apart does not pass its own weights on.

With `average=True` the networks are averaged in weight space instead (a "model soup", Wortsman et al., ICML 2022;
with two networks, one fine-tuned from the other, WiSE-FT, Wortsman et al., CVPR 2022): one network whose every
parameter and batch-norm statistic is the (weighted) mean of theirs, scored at one network's cost. It is meant for
networks fine-tuned from one another (they lie in one basin of the loss); networks with no common start average
into noise, and two trained apart from one pretrained start average into a weaker network than their logit mean
(docs/results.md, section 23), so measure the average before trusting it.

`route` pairs a detector with a noise-robust one that scores the inputs whose estimated noise exceeds a limit
(`dfdetect.models.router`): one grey level of noise breaks the detectors that learned up-sampling traces, not
`dfdc-lite0` (docs/results.md, sections 28 and 29).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dfdetect.engine.checkpoint import build_metadata, resolve_checkpoint, save_checkpoint
from dfdetect.errors import ConfigError
from dfdetect.models.detector import Detector
from dfdetect.models.ensemble import ENSEMBLE, Ensemble, normalised_weights
from dfdetect.models.router import ROUTED, NoiseRouter, aligned_logit, architecture_entry, check_noise_limit
from dfdetect.pretrained import release_label
from dfdetect.quality import NOISE_CAUTION
from dfdetect.run_folder import RunFolder
from dfdetect.runtime.torch_backend import load_model

logger = logging.getLogger(__name__)


MEMBER_MARK = "#"
"""`SOURCE#N` names member N of the ensemble SOURCE (e.g. `dfdc-lite0-ens#0`)."""


def split_member(source: Path) -> tuple[Path, int | None]:
    """(`source`, None), or for `SOURCE#N` naming no existing file, (SOURCE, N)."""
    text = str(source)
    head, mark, tail = text.rpartition(MEMBER_MARK)
    if not mark or source.exists() or not tail.isdigit():
        return source, None
    return Path(head), int(tail)


def members_of(source: Path) -> list[tuple[Detector, dict[str, Any]]]:
    """The networks `source` contributes to an ensemble, each with the record of where it came from: the one
    network of a single-network checkpoint, every member of an ensemble, or with `SOURCE#N` member N alone."""
    path, wanted = split_member(source)
    model, metadata = load_model(path)
    release_name = release_label(metadata)
    if not isinstance(model, Ensemble):
        if wanted is not None:
            raise ConfigError(f"{source}: {path} is one network, not an ensemble; #N picks a member of an ensemble")
        record = {
            "source": str(source),
            "release": release_name,
            "checkpoint": str(resolve_checkpoint(path)),
            "epoch": metadata.get("epoch"),
            "validation_metrics": metadata.get("metrics"),
            "config": metadata.get("config"),
        }
        return [(model, record)]
    entries = metadata["ensemble"]["members"]
    if wanted is not None and not 0 <= wanted < len(entries):
        raise ConfigError(
            f"{source}: {path} is an ensemble of {len(entries)} networks; pick member 0 to {len(entries) - 1}"
        )
    picked = range(len(entries)) if wanted is None else [wanted]
    found: list[tuple[Detector, dict[str, Any]]] = []
    for index in picked:
        entry = {key: value for key, value in entries[index].items() if key not in ("model", "dropout")}
        entry["from_ensemble"] = {"source": str(path), "member": index, "release": release_name}
        if model.weighted:
            entry["from_ensemble"]["weight"] = model.weights[index]
        member: Detector = model.members[index]  # type: ignore[assignment]
        found.append((member, entry))
    return found


def average_networks(
    members: Sequence[Detector], sources: Sequence[dict[str, Any]], weights: Sequence[float] | None = None
) -> tuple[Detector, dict[str, Any]]:
    """One network whose floating-point parameters and buffers are the `weights`-weighted mean of `members`'
    (equal weights when None; weights are normalised to sum to 1); integer buffers (batch-norm step counts) come
    from the first member. Returns it with its source record, which lists the averaged networks and weights."""
    weights = normalised_weights(weights, len(members), "averaging")
    first = members[0]
    states = [member.state_dict() for member in members]
    shapes = {key: tensor.shape for key, tensor in states[0].items()}
    for member, state, source in zip(members[1:], states[1:], sources[1:], strict=True):
        if member.name != first.name or {key: tensor.shape for key, tensor in state.items()} != shapes:
            raise ConfigError(
                f"only networks of one architecture average: {sources[0]['source']} is {first.name}, "
                f"{source['source']} is {member.name} with other parameters"
            )
    averaged = {}
    for key, tensor in states[0].items():
        if tensor.is_floating_point():
            averaged[key] = sum(weight * state[key].float() for weight, state in zip(weights, states, strict=True))
        else:
            averaged[key] = tensor.clone()
    with torch.no_grad():
        first.load_state_dict(averaged)
    record = {
        "source": "average of " + ", ".join(str(source["source"]) for source in sources),
        "averaged": [{**source, "weight": weight} for source, weight in zip(sources, weights, strict=True)],
    }
    return first, record


def combine(
    models: Sequence[Path],
    out: Path,
    tta: str = "none",
    average: bool = False,
    weights: Sequence[float] | None = None,
) -> Path:
    """Write the ensemble of `models` (run folders, checkpoints or shipped names; an ensemble adds all its members,
    `SOURCE#N` its member N) to the run folder `out`; return its checkpoint. Every member is scored with `tta`,
    whatever the ensemble it came from used. With `average`, the networks are averaged in weight space into one
    (see `average_networks`); otherwise `weights` weigh their logits. Either way `weights` are per network, in the
    order the networks are gathered."""
    if not models:
        raise ConfigError("give at least one --model to combine")
    members, sources = [], []
    for source in models:
        for member, record in members_of(source):
            members.append(member)
            sources.append(record)
    networks = len(members)
    if weights is None and any("weight" in record.get("from_ensemble", {}) for record in sources):
        logger.warning("the networks of a weighted ensemble are weighed equally here; give --weights to weigh them")
    config: dict[str, Any] = {"ensemble_of": [str(source) for source in models], "tta": tta}
    if average:
        soup, record = average_networks(members, sources, weights)
        members, sources = [soup], [record]
        config["average"] = [source["weight"] for source in record["averaged"]]
        ensemble = Ensemble(members, tta=tta)
    else:
        ensemble = Ensemble(members, tta=tta, weights=weights)
        config["weights"] = ensemble.weights
    metadata = build_metadata(ENSEMBLE, config, ensemble.preprocessing.to_dict(), epoch=0, metrics={})
    metadata["ensemble"] = ensemble.spec(sources)
    path = RunFolder(out).best
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, ensemble.state_dict(), metadata)
    kind = "a weight-space average" if average else "a weighted ensemble" if ensemble.weighted else "an ensemble"
    logger.info("wrote %s of %d network(s), tta %s, to %s", kind, networks, tta, path)
    return path


def route(primary: Path, fallback: Path, out: Path, noise_limit: float = NOISE_CAUTION) -> Path:
    """Write to the run folder `out` a detector that scores inputs with `primary` and those with estimated noise
    above `noise_limit` grey levels with `fallback` (`dfdetect.models.router`); return its checkpoint. The
    fallback's logit is mapped onto the primary's scale through their stored calibrations, and the primary's
    calibration is carried over (it holds for both branches by that map); calibrate the result on Validation to
    refit it."""
    check_noise_limit(noise_limit)  # before the networks load
    models = {"primary": load_model(primary), "fallback": load_model(fallback)}
    calibrations = {role: metadata.get("calibration") for role, (_, metadata) in models.items()}
    for role, calibration in calibrations.items():
        if not calibration:
            logger.warning("the %s network is not calibrated: its logits are taken as they are", role)
    scale, shift = aligned_logit(calibrations["primary"], calibrations["fallback"])
    router = NoiseRouter(models["primary"][0], models["fallback"][0], noise_limit, scale=scale, shift=shift)
    spec: dict[str, Any] = {"noise_limit": noise_limit, "scale": scale, "shift": shift}
    for role, source in (("primary", primary), ("fallback", fallback)):
        model, metadata = models[role]
        spec[role] = {
            **architecture_entry(model, metadata),
            "source": str(source),
            "release": release_label(metadata),
            "checkpoint": str(resolve_checkpoint(source)),
            "calibration": calibrations[role],
        }
    config = {"primary": str(primary), "fallback": str(fallback), "noise_limit": noise_limit}
    metadata = build_metadata(ROUTED, config, router.preprocessing.to_dict(), epoch=0, metrics={})
    metadata[ROUTED] = spec
    if calibrations["primary"]:
        metadata["calibration"] = calibrations["primary"]
    path = RunFolder(out).best
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, router.state_dict(), metadata)
    logger.info(
        "wrote a detector routing inputs noisier than %g grey levels from %s to %s, to %s",
        noise_limit,
        primary,
        fallback,
        path,
    )
    return path
