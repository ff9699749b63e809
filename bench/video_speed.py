"""How long a video takes end to end on this machine: decode + find the face + score, stage by stage.

    python bench/video_speed.py --model dfdc-lite0 --frames 32

Writes a 10-second 1280 x 720 H.264 clip at 30 fps (a face of scikit-image's astronaut photo, public domain,
moving across a textured scene) with PyAV, then scores it as `dfdetect predict clip.mp4` does, `--repeats` times.
Prints a Markdown table: seconds per stage and for the whole clip, and frames per second of the whole path.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from dfdetect.faces import crop_face, detect_faces
from dfdetect.runtime import load_predictor
from dfdetect.video import aggregate, read_frames

FACE_BOX = (150, 40, 330, 220)


def write_clip(path: Path, seconds: int = 10, fps: int = 30, size: tuple[int, int] = (1280, 720)) -> Path:
    import av

    generator = np.random.default_rng(0)
    scene = Image.fromarray(generator.integers(40, 220, (18, 32, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    face = Image.fromarray(data.astronaut()).crop(FACE_BOX).resize((260, 260))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(seconds * fps):
            frame = scene.copy()
            frame.paste(face, (100 + index * 3, 200))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("dfdc-lite0"))
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    predictor = load_predictor(args.model, runtime=args.runtime, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder) / "clip.mp4")
        timings: dict[str, list[float]] = {"decode": [], "detect": [], "score": []}
        for _ in range(args.repeats):
            started = time.perf_counter()
            frames = read_frames(clip, args.frames)
            timings["decode"].append(time.perf_counter() - started)
            started = time.perf_counter()
            images = [Image.fromarray(pixels) for _, _, pixels in frames]
            crops = [crop_face(image, detect_faces(image)[0]) for image in images]
            timings["detect"].append(time.perf_counter() - started)
            started = time.perf_counter()
            aggregate(1 - predictor.predict_images(crops))
            timings["score"].append(time.perf_counter() - started)
    median = {stage: float(np.median(values)) for stage, values in timings.items()}
    total = sum(median.values())
    print(
        f"\n10 s 1280x720 H.264 clip (300 frames), {args.frames} frames read, {predictor.model_label} "
        f"({predictor.runtime}), median of {args.repeats}"
    )
    print("| decode s | face detection s | scoring s | whole clip s | frames/s (whole path) |")
    print("|---|---|---|---|---|")
    print(
        f"| {median['decode']:.2f} | {median['detect']:.2f} | {median['score']:.2f} | {total:.2f} | "
        f"{args.frames / total:.1f} |"
    )


if __name__ == "__main__":
    main()
