"""Convert MTCNN's weights from the facenet-pytorch wheel (MIT) to one safetensors file inside dfdetect.

    python tools/convert_mtcnn_weights.py                       # downloads the wheel with pip (no install)
    python tools/convert_mtcnn_weights.py --wheel facenet_pytorch-2.6.0-py3-none-any.whl

facenet-pytorch pins torch < 2.3, so it is never installed: its wheel is only opened as a zip, its three
state dicts (`facenet_pytorch/data/{pnet,rnet,onet}.pt`) are read with torch.load(weights_only=True), and their
tensors are written under `pnet.`, `rnet.` and `onet.` to src/dfdetect/weights/mtcnn.safetensors, with the
source in the file's metadata. The licence is kept beside it (LICENSE-facenet-pytorch.md).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "src" / "dfdetect" / "weights" / "mtcnn.safetensors"
VERSION = "2.6.0"


def download_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(folder), f"facenet-pytorch=={VERSION}"],
        check=True,
    )
    return next(folder.glob("facenet_pytorch-*.whl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help="a downloaded facenet-pytorch wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        wheel = args.wheel or download_wheel(Path(temporary))
        tensors: dict[str, torch.Tensor] = {}
        with zipfile.ZipFile(wheel) as archive:
            for network in ("pnet", "rnet", "onet"):
                data = archive.read(f"facenet_pytorch/data/{network}.pt")
                state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                tensors.update({f"{network}.{key}": value.contiguous() for key, value in state.items()})
    metadata = {
        "source": f"{wheel.name} (facenet_pytorch/data/*.pt)",
        "license": "MIT, Copyright (c) 2019 Timothy Esler",
    }
    save_file(tensors, str(args.out), metadata=metadata)
    print(f"wrote {len(tensors)} tensors to {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
