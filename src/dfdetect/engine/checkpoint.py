"""Self-describing checkpoints: one safetensors file holds the weights and, in its header, the metadata.

`name.safetensors` carries model tensors under their own keys, optional training-state tensors under
`train_state/...`, and a JSON header entry `dfdetect` (config, class map, preprocessing, epoch, metrics,
package version). `name.json` beside it repeats the metadata for people and tools. Files are written to a
temporary name and renamed, so a kill never leaves a half-written checkpoint; loading runs no pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import save_file

from dfdetect.conventions import CLASS_NAMES, METADATA_KEY
from dfdetect.conventions import VERSION as __version__
from dfdetect.errors import CheckpointError
from dfdetect.models.ensemble import ENSEMBLE
from dfdetect.models.router import ROUTED
from dfdetect.pretrained import shipped_detector, shipped_detectors
from dfdetect.run_folder import RunFolder
from dfdetect.stores import atomic_write, read_safetensors

STATE_PREFIX = "train_state/"


def flatten_state(tree: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state (optimizer, scheduler, ...) into tensors and a JSON-able skeleton."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree.detach().cpu().contiguous()}, {"__tensor__": prefix}
    if isinstance(tree, dict):
        tensors: dict[str, torch.Tensor] = {}
        skeleton: dict[str, Any] = {}
        for key, value in tree.items():
            sub_tensors, skeleton[str(key)] = flatten_state(value, f"{prefix}/{key}")
            tensors.update(sub_tensors)
        # JSON keys are strings; remember which were ints (optimizer state is keyed by parameter index).
        return tensors, {"__dict__": skeleton, "__int_keys__": [str(k) for k in tree if isinstance(k, int)]}
    if isinstance(tree, list | tuple):
        tensors, items = {}, []
        for index, value in enumerate(tree):
            sub_tensors, item = flatten_state(value, f"{prefix}/{index}")
            tensors.update(sub_tensors)
            items.append(item)
        return tensors, {"__list__": items}
    if tree is None or isinstance(tree, bool | int | float | str):
        return {}, tree
    raise TypeError(f"cannot store {type(tree).__name__} at {prefix} in a checkpoint")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of flatten_state."""
    if isinstance(skeleton, dict) and "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        int_keys = set(skeleton["__int_keys__"])
        return {
            (int(key) if key in int_keys else key): unflatten_state(value, tensors)
            for key, value in skeleton["__dict__"].items()
        }
    if isinstance(skeleton, dict) and "__list__" in skeleton:
        return [unflatten_state(item, tensors) for item in skeleton["__list__"]]
    return skeleton


def build_metadata(
    model_name: str,
    config: dict[str, Any],
    preprocessing: dict[str, Any],
    epoch: int,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The metadata every checkpoint carries."""
    return {
        "format": "dfdetect-checkpoint/1",
        "model": model_name,
        "class_map": {str(index): name for index, name in enumerate(CLASS_NAMES)},
        "output": "one logit per image; sigmoid(logit) = P(Real); labels 0 = Fake, 1 = Real",
        "preprocessing": preprocessing,
        "config": config,
        "epoch": epoch,
        "metrics": metrics,
        "dfdetect_version": __version__,
        "torch_version": torch.__version__,
    }


def save_checkpoint(
    path: Path,
    model_state: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write weights (+ optional training state) and metadata atomically to `path` and `path.json`."""
    tensors = {key: value.detach().cpu().contiguous() for key, value in model_state.items()}
    header = dict(metadata)
    if train_state is not None:
        state_tensors, skeleton = flatten_state(train_state, STATE_PREFIX.rstrip("/"))
        tensors.update(state_tensors)
        header["train_state"] = skeleton
    encoded = {METADATA_KEY: json.dumps(header)}
    atomic_write(path, lambda temporary: save_file(tensors, str(temporary), metadata=encoded))
    atomic_write(
        path.with_suffix(".json"),
        lambda temporary: temporary.write_text(json.dumps(metadata, indent=2), encoding="utf-8"),
    )


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any] | None]:
    """Return (model state dict, metadata, training state or None) from a checkpoint file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    header, tensors = read_safetensors(path, "checkpoint")
    if METADATA_KEY not in header:
        raise CheckpointError(f"{path}: a safetensors file without dfdetect metadata; not a dfdetect checkpoint")
    metadata = json.loads(header[METADATA_KEY])
    skeleton = metadata.pop("train_state", None)
    model_state = {key: value for key, value in tensors.items() if not key.startswith(STATE_PREFIX)}
    train_state = unflatten_state(skeleton, tensors) if skeleton is not None else None
    return model_state, metadata, train_state


def resolve_checkpoint(path: Path, which: str = "best") -> Path:
    """A run folder means its `checkpoints/<which>.safetensors`; a file is taken as it is; the name of a detector
    shipped in the package (`dfdetect models` lists them) means its weights file."""
    if not path.exists() and len(path.parts) == 1 and (shipped := shipped_detector(str(path))) is not None:
        return shipped.path
    if path.is_dir():
        candidate = RunFolder(path).checkpoint(which)
        if not candidate.is_file():
            raise CheckpointError(f"{path}: no checkpoints/{which}.safetensors in this folder; is it a run folder?")
        return candidate
    if not path.exists():
        names = ", ".join(detector.name for detector in shipped_detectors()) or "none"
        raise CheckpointError(f"{path}: no such run folder, checkpoint file or shipped detector (shipped: {names})")
    return path


class InitialWeights(NamedTuple):
    """What a fine-tuning run starts from: the weights, their metadata and the file they came from."""

    state: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    path: Path


def initial_weights(source: Path, model: str, member: int | None = None) -> InitialWeights:
    """The weights a fine-tuning run of `model` starts from: one network's checkpoint (run folder, file or shipped
    detector name) of that same model, or with `member`, that member of an ensemble; an ensemble without a member,
    a member of a one-network checkpoint, or another model is an error that names the source."""
    path = resolve_checkpoint(source)
    state, metadata, _ = load_checkpoint(path)
    if metadata["model"] == ENSEMBLE:
        members = metadata["ensemble"]["members"]
        if member is None or not 0 <= member < len(members):
            given = "" if member is None else f" (member {member} given)"
            raise CheckpointError(
                f"{path}: an ensemble of {len(members)} networks{given}; fine-tuning starts from one network: "
                f"give --init-member 0 to {len(members) - 1} ({', '.join(entry['model'] for entry in members)})"
            )
        prefix = f"members.{member}."
        state = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        metadata = {
            **members[member],
            "preprocessing": metadata.get("preprocessing", {}),
            "from_ensemble": {"member": member, "release": metadata.get("release")},
        }
    elif metadata["model"] == ROUTED:
        sources = " and ".join(str(metadata[ROUTED][role].get("source")) for role in ("primary", "fallback"))
        raise CheckpointError(f"{path}: a routed detector (dfdetect route); fine-tune one of its sources, {sources}")
    elif member is not None:
        raise CheckpointError(f"{path}: one network, not an ensemble; --init-member applies to an ensemble only")
    found = metadata["model"]
    if found != model:
        raise CheckpointError(f"{path}: weights of {found!r}, not of {model!r}; give --model {found} to fine-tune it")
    return InitialWeights(state, metadata, path)
