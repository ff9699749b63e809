"""Files written atomically, and the versioned JSON stores of what was found once per image.

Two things are costly to find and never change while an image file does not: the faces framing looks for
(`dfdetect.faces`, `evaluate --faces-file`) and the landmarks that place self-blending masks
(`dfdetect.data.landmarks`, `train --landmarks`). Each is found once and kept in a JSON file
`{"format": N, <table>: {...}}`. This module holds what the two share: reading such a file back with a clear
error that names it (and says how to recover), and writing it so that a crash leaves the old file or none.
It also reads safetensors files (checkpoints, the pseudo-fakes' auto-encoder) with one clear error for a bad one.
No torch here (safetensors imports it only when a file is read), so `faces` and `landmarks` stay cheap to import.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dfdetect.errors import CheckpointError, DatasetError


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call write(temporary_path), then rename it onto `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_store(file: Path, kind: str, version: int, table: str) -> dict[str, Any]:
    """The JSON object in `file`, checked to be a dfdetect `kind` file of format `version` whose `table` entry is
    an object; anything else is a DatasetError naming the file."""
    try:
        stored = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DatasetError(f"{file}: cannot read the {kind} file ({error}); delete it to find them again") from error
    if not isinstance(stored, dict) or stored.get("format") != version or not isinstance(stored.get(table), dict):
        raise DatasetError(f"{file}: not a dfdetect {kind} file (format {version}); delete it to find them again")
    return stored


def write_store(file: Path, version: int, content: dict[str, Any]) -> None:
    """Write `{"format": version, **content}` to `file` as JSON, atomically."""
    text = json.dumps({"format": version, **content})
    atomic_write(file, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def read_safetensors(file: Path, kind: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The header metadata and the tensors (torch, on the CPU) of a safetensors `file`; one that cannot be read is a
    CheckpointError naming it: "FILE: not a readable safetensors KIND (why)"."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            return handle.metadata() or {}, {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{file}: not a readable safetensors {kind} ({error})") from None
