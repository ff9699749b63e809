"""Package a finished run as a detector shipped inside dfdetect (src/dfdetect/pretrained/).

    python tools/package_detector.py runs/strong-lite0-128 --name dfdc-lite0 --version 1.0.0 \
        --data ../shared/data/dfdc-faces --command "dfdetect train --recipe strong ..."

Scores Validation and Test with the fp16 weights that ship (95% bootstrap intervals, 1,000 stratified resamples)
and the example images in tests/assets/examples/, and records all of it in the checkpoint's metadata; the
model card (docs/MODEL_CARD.md) quotes these numbers, and tests/pretrained/ checks the examples' scores.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from dfdetect.pretrained import folder
from dfdetect.pretrained.release import model_card, package_detector

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--data", type=Path, help="dataset root whose Validation and Test are scored")
    parser.add_argument("--command", default="", help="the exact command that trained the run")
    parser.add_argument("--summary", default="")
    parser.add_argument("--trained-on", default="")
    parser.add_argument("--terms", default="")
    parser.add_argument("--out", type=Path, default=folder())
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--notes", default="", help="training notes for the model card (Markdown)")
    parser.add_argument("--card", type=Path, default=ROOT / "docs" / "MODEL_CARD.md", help="model card to write")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    examples = sorted((ROOT / "tests" / "assets" / "examples").glob("*.jpg"))
    release = {
        "summary": args.summary,
        "trained_on": args.trained_on,
        "terms": args.terms,
        "command": args.command,
        "card": args.card.resolve().relative_to(ROOT).as_posix(),
        "labels": "0 = Fake, 1 = Real; the output is P(Real), p_fake = 1 - P(Real)",
        "training_notes": args.notes,
    }
    out = package_detector(
        args.run, args.out, args.name, args.version, release, args.data, examples=examples, resamples=args.resamples
    )
    print(json.dumps(json.loads(out.with_suffix(".json").read_text())["release"], indent=2))
    release = json.loads(out.with_suffix(".json").read_text())["release"]
    args.card.write_text(model_card(release), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) and {args.card}")


if __name__ == "__main__":
    main()
