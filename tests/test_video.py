"""Videos: generated clips with a known face at known places, broken files, aggregation on known scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfdetect.cli import main
from dfdetect.faces import Face, crop_box
from dfdetect.quality import NOISY, Caution, noise_sigma
from dfdetect.video import VideoError, aggregate, predict_video, read_frames
from tests.conftest import face_frames, write_video

av = pytest.importorskip("av")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    frames, _ = face_frames()
    empty = [np.full((240, 320, 3), 120, dtype=np.uint8)] * 12
    face = write_video(folder / "face.mp4", frames)
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(face.read_bytes()[:1500])
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video at all")
    return {
        "face": face,
        "no_face": write_video(folder / "no_face.mp4", empty),
        "truncated": truncated,
        "zero": folder / "zero.mp4",
        "text": folder / "text.mp4",
    }


def test_frames_are_evenly_spaced(clips: dict[str, Path]) -> None:
    frames = read_frames(clips["face"], count=5)
    assert [index for index, _, _ in frames] == [0, 5, 10, 14, 19]
    assert frames[0][2].shape == (240, 320, 3) and frames[-1][1] == pytest.approx(1.9, abs=0.01)
    assert len(read_frames(clips["face"], count=50)) == 20  # never more than the clip holds


def test_the_face_is_found_and_followed_in_every_frame(clips: dict[str, Path]) -> None:
    _, corners = face_frames()
    result = predict_video(clips["face"], lambda images: np.full(len(images), 0.25), lambda p: "real", frames=5)
    assert result.error is None and result.frames_read == 5 and result.faces_found == 5
    for frame in result.frames:
        left, top = corners[frame.frame]
        assert frame.box is not None
        centre = ((frame.box[0] + frame.box[2]) / 2, (frame.box[1] + frame.box[3]) / 2)
        assert abs(centre[0] - (left + 50)) < 15 and abs(centre[1] - (top + 55)) < 15
        assert frame.p_fake == pytest.approx(0.75)
    assert result.p_fake == pytest.approx(0.75)


def test_a_videos_noise_is_its_faces_median_and_noisy_videos_get_a_caution(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    frames, _ = face_frames(12)
    grainy = [
        np.clip(f + np.random.default_rng(i).normal(0, 30, f.shape), 0, 255).astype(np.uint8)
        for i, f in enumerate(frames)
    ]
    noisy_clip = write_video(tmp_path / "grainy.mp4", grainy)
    measured: list[float] = []
    sides: list[int | None] = []

    def noise(image: Image.Image) -> float:
        measured.append(noise_sigma(image, 64))
        return measured[-1]

    def cautions_of(value: float | None, side: int | None) -> list[Caution]:
        sides.append(side)
        return [] if value is None or value <= 1.5 else [Caution(NOISY, f"noisy {value:.2f}")]

    results = {}
    for name, clip in (("clean", clips["face"]), ("grainy", noisy_clip)):
        measured.clear()
        results[name] = predict_video(
            clip,
            lambda images: np.full(len(images), 0.5),
            lambda p: "real",
            frames=5,
            noise=noise,
            cautions_of=cautions_of,
        )
        assert [frame.noise for frame in results[name].frames] == [round(value, 2) for value in measured]
        assert results[name].noise == round(float(np.median(measured)), 2)
    assert results["clean"].noise < 1.5 < results["grainy"].noise  # type: ignore[operator]
    assert results["clean"].caution is None and results["grainy"].caution == f"noisy {results['grainy'].noise:.2f}"
    assert results["clean"].caution_codes == [] and results["grainy"].to_dict()["caution_codes"] == ["noisy"]
    # with it, the typical face crop's shorter side: the median over the frames of the box cut at the default margin
    size = Image.fromarray(frames[0]).size
    for name, side in zip(results, sides, strict=True):
        crops = [crop_box(size, Face(f.box, 1.0)) for f in results[name].frames if f.box is not None]
        assert side == int(np.median([min(right - left, bottom - top) for left, top, right, bottom in crops]))
    plain = predict_video(clips["face"], lambda images: np.full(len(images), 0.5), lambda p: "real", frames=3)
    assert plain.noise is None and plain.caution is None and all(frame.noise is None for frame in plain.frames)


@pytest.mark.parametrize(
    ("name", "message"),
    [("no_face", "no face found"), ("truncated", "truncated"), ("zero", "empty file"), ("text", "cannot decode")],
)
def test_broken_and_faceless_videos_get_an_error(clips: dict[str, Path], name: str, message: str) -> None:
    result = predict_video(clips[name], lambda images: np.full(len(images), 0.5), lambda p: "real", frames=4)
    assert result.p_fake is None and result.error is not None and message in result.error
    assert str(clips[name]) in result.error


def test_unreadable_files_raise_video_errors(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        read_frames(tmp_path / "missing.mp4")


def test_aggregation_on_known_frame_scores() -> None:
    scores = [0.9, 0.9, 0.1]
    mean_logit = 1 / (1 + np.exp(-np.mean(np.log(np.array(scores) / (1 - np.array(scores))))))
    assert aggregate(scores, "mean") == pytest.approx(mean_logit)
    assert aggregate(scores, "max") == 0.9
    confident_fake = [0.95] * 11 + [0.1] * 21
    assert aggregate(confident_fake, "confident") == pytest.approx(0.95)  # 11 confident fakes decide
    confident_real = [0.05] * 29 + [0.5] * 3
    assert aggregate(confident_real, "confident") == pytest.approx(0.05)  # 90% confidently real
    assert aggregate([0.5, 0.7], "confident") == pytest.approx(0.6)  # neither: the plain mean
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(scores, "median")


def test_predict_mixes_videos_and_images(trained_run: Path, clips: dict[str, Path], tmp_path: Path, capsys) -> None:
    image = tmp_path / "still.png"
    Image.fromarray(face_frames(1)[0][0]).save(image)
    per_frame = tmp_path / "frames.csv"
    args = ["predict", "--model", str(trained_run), "--runtime", "torch", "--device", "cpu", "--format", "json"]
    code = main(
        [*args, str(clips["face"]), str(image), str(clips["zero"]), "--frames", "4", "--per-frame", str(per_frame)]
    )
    rows = json.loads(capsys.readouterr().out)
    assert code == 1  # the empty video failed, the rest were scored
    assert [Path(row["path"]).name for row in rows] == ["face.mp4", "still.png", "zero.mp4"]
    assert rows[0]["frames_read"] == 4 and rows[0]["faces_found"] == 4 and rows[0]["label"] in ("real", "fake")
    assert rows[1]["error"] is None and "empty file" in rows[2]["error"]
    with per_frame.open() as handle:
        frames = list(csv.DictReader(handle))
    assert len(frames) == 4 and all(row["box"] and row["p_fake"] and float(row["noise"]) >= 0 for row in frames)
    assert rows[0]["noise"] == pytest.approx(float(np.median([float(row["noise"]) for row in frames])), abs=0.01)


def test_frames_are_evenly_spaced_when_the_container_does_not_count_them(tmp_path: Path) -> None:
    # Matroska written by PyAV stores no frame count: frames are thinned while decoding, never all kept.
    clip = write_video(tmp_path / "clip.mkv", [np.full((64, 64, 3), 10 * i, dtype=np.uint8) for i in range(25)])
    with av.open(str(clip)) as container:
        assert container.streams.video[0].frames == 0
    assert [index for index, _, _ in read_frames(clip, count=4)] == [0, 8, 16, 24]


def test_a_streamed_run_over_videos_writes_and_resumes_as_one_run(
    trained_run: Path, clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dfdetect import cli

    image = tmp_path / "still.png"
    Image.fromarray(face_frames(1)[0][0]).save(image)
    inputs = [str(clips["face"]), str(image), str(clips["zero"]), "--frames", "4"]
    args = ["predict", "--model", str(trained_run), "--runtime", "torch", "--format", "csv", *inputs]
    whole, whole_frames = tmp_path / "whole.csv", tmp_path / "whole-frames.csv"
    assert main([*args, "--out", str(whole), "--per-frame", str(whole_frames)]) == 1  # written at the end
    monkeypatch.setattr(cli, "PREDICT_STEP", 4)  # the face video (4 frames) is a batch of its own
    batches = []
    score_files = cli.score_files
    monkeypatch.setattr(cli, "score_files", lambda p, paths, a: batches.append(len(paths)) or score_files(p, paths, a))
    out, frames = tmp_path / "scores.csv", tmp_path / "frames.csv"
    assert main([*args, "--out", str(out), "--per-frame", str(frames)]) == 1
    assert batches == [1, 2]
    assert out.read_text() == whole.read_text() and frames.read_text() == whole_frames.read_text()
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:2]))  # stopped after the first batch
    assert main([*args, "--out", str(out), "--per-frame", str(frames), "--resume"]) == 1
    assert batches == [1, 2, 2]  # the image and the empty video only
    assert out.read_text() == whole.read_text() and frames.read_text() == whole_frames.read_text()
