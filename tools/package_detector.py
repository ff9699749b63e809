"""Package a finished run as a detector shipped inside dfdetect (src/dfdetect/pretrained/).

    python tools/package_detector.py runs/strong-lite0-128 --name dfdc-lite0 --version 1.0.0 \
        --data ../shared/data/dfdc-faces --command "dfdetect train --recipe strong ..."

A new version of a shipped detector that changes only its calibration (e.g. `dfdc-lite0-ens` 3.1.0: 3.0.0's weights
at another threshold policy) keeps the earlier release's facts with `--release-from`, its card among them (write
the new draft elsewhere with `--card` and merge it into that card by hand), and `--command` adds lines:

    python tools/package_detector.py runs/ens3-cal/model.safetensors --name dfdc-lite0-ens --version 3.1.0 \
        --data ../shared/data/dfdc-faces --release-from OLD.json --command "dfdetect calibrate ..."

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
    parser.add_argument(
        "--release-from",
        type=Path,
        help="a shipped detector's .json whose release facts (summary, training data, terms, command, notes) this "
        "version keeps; --command then adds lines to its command",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    examples = sorted((ROOT / "tests" / "assets" / "examples").glob("*.jpg"))
    card = args.card.resolve()
    release = {
        "summary": args.summary,
        "trained_on": args.trained_on,
        "terms": args.terms,
        "command": args.command,
        "card": card.relative_to(ROOT).as_posix() if card.is_relative_to(ROOT) else str(card),
        "labels": "0 = Fake, 1 = Real; the output is P(Real), p_fake = 1 - P(Real)",
        "training_notes": args.notes,
    }
    if args.release_from:
        earlier = json.loads(args.release_from.read_text(encoding="utf-8"))["release"]
        kept = ("summary", "trained_on", "terms", "training_notes")
        release |= {key: earlier[key] for key in kept if key in earlier and not release[key]}
        release["command"] = "\n".join(filter(None, [earlier.get("command", ""), args.command]))
        release["card"] = earlier.get("card", release["card"])  # the card to merge --card's draft into
    out = package_detector(
        args.run, args.out, args.name, args.version, release, args.data, examples=examples, resamples=args.resamples
    )
    print(json.dumps(json.loads(out.with_suffix(".json").read_text())["release"], indent=2))
    release = json.loads(out.with_suffix(".json").read_text())["release"]
    args.card.write_text(model_card(release), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) and {args.card}")


if __name__ == "__main__":
    main()
