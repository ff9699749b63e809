"""Face detectors side by side: MTCNN vs OpenCV's Haar cascade, on faces placed into larger scenes.

    python bench/face_detectors.py --scenes 60

Each scene is a 640 x 480 background (generated texture, or a face-free public-domain photo from scikit-image)
with the face of skimage's astronaut photo (public domain, NASA) pasted at a known place: 24 to 240 px
across, sometimes mirrored, darker or brighter, or rotated by up to 20 degrees. A detection counts as the face
when its centre lies within a quarter of the face's size of the true centre; every other detection is a false
one. Faceless scenes (the photos alone) count false detections only. Prints a Markdown table; times are per
scene on this machine's CPU threads, both detectors in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image, ImageEnhance
from skimage import data

from dfdetect.faces import detect_faces

FACE_BOX = (150, 40, 330, 220)
SIZES = (24, 40, 64, 100, 160, 240)
PHOTOS = ("coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry")


def background(generator: np.random.Generator, index: int) -> Image.Image:
    if index % 2:
        coarse = generator.integers(40, 220, (12, 16, 3), dtype=np.uint8)
        return Image.fromarray(coarse).resize((640, 480), Image.Resampling.BICUBIC)
    photo = getattr(data, PHOTOS[(index // 2) % len(PHOTOS)])()
    return Image.fromarray(photo).convert("RGB").resize((640, 480))


def make_scene(generator: np.random.Generator, index: int) -> tuple[Image.Image, tuple[float, float, float]]:
    """A scene and its face's (centre x, centre y, size)."""
    scene = background(generator, index)
    size = SIZES[index % len(SIZES)]
    face = Image.fromarray(data.astronaut()).crop(FACE_BOX).resize((size, size))
    if generator.random() < 0.5:
        face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    face = ImageEnhance.Brightness(face).enhance(float(generator.uniform(0.6, 1.3)))
    face = face.rotate(float(generator.uniform(-20, 20)), resample=Image.Resampling.BILINEAR)
    left, top = int(generator.integers(0, 640 - size)), int(generator.integers(0, 480 - size))
    scene.paste(face, (left, top))
    # The head crop is 180 px around a face of about 90 x 110 px, centred a little below the crop's centre.
    return scene, (left + size * 0.5, top + size * 0.55, size * 0.55)


def evaluate(detector: str, scenes: list, faceless: list[Image.Image]) -> dict[str, float]:
    """Recall (overall and per face size), false detections and milliseconds per scene."""
    hits_by_size: dict[int, list[bool]] = {size: [] for size in SIZES}
    false = 0
    started = time.perf_counter()
    for (scene, (cx, cy, face)), size in zip(scenes, [SIZES[i % len(SIZES)] for i in range(len(scenes))], strict=True):
        hit = False
        for found in detect_faces(scene, detector, min_size=10):
            x, y = (found.box[0] + found.box[2]) / 2, (found.box[1] + found.box[3]) / 2
            if not hit and abs(x - cx) < face / 2 and abs(y - cy) < face / 2:
                hit = True
            else:
                false += 1
        hits_by_size[size].append(hit)
    for photo in faceless:
        false += len(detect_faces(photo, detector, min_size=10))
    milliseconds = (time.perf_counter() - started) / (len(scenes) + len(faceless)) * 1000
    hits = [hit for values in hits_by_size.values() for hit in values]
    row = {"recall": sum(hits) / len(hits), "false": float(false), "ms": milliseconds}
    row.update({f"recall {size}px": sum(v) / max(1, len(v)) for size, v in hits_by_size.items()})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generator = np.random.default_rng(args.seed)
    scenes = [make_scene(generator, index) for index in range(args.scenes)]
    faceless = [Image.fromarray(getattr(data, name)()).convert("RGB").resize((640, 480)) for name in PHOTOS]
    detect_faces(scenes[0][0], "mtcnn")  # load the weights before timing
    rows = {name: evaluate(name, scenes, faceless) for name in ("mtcnn", "haar")}
    columns = ["recall", "false", "ms", *(f"recall {size}px" for size in SIZES)]
    print(f"\n{len(scenes)} scenes with one face, {len(faceless)} faceless photos, 640 x 480, same run")
    print("| detector | recall | false detections | ms per scene | " + " | ".join(columns[3:]) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows.items():
        cells = [f"{row['recall']:.2f}", f"{row['false']:.0f}", f"{row['ms']:.0f}"]
        cells += [f"{row[column]:.2f}" for column in columns[3:]]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
