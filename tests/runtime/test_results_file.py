import csv
import json
from pathlib import Path

import pytest

from dfdetect import cli
from dfdetect.cli import main
from dfdetect.errors import DfdetectError
from dfdetect.runtime.results_file import ResultsFile, fieldnames, keep_rows_of, scored_paths

COLUMNS = fieldnames([])


def row(path: str, p_fake: float = 0.25) -> dict[str, object]:
    return {"path": path, "label": "real", "p_fake": p_fake, "p_real": 1 - p_fake, "error": None, "model": "m",
            "calibrated": True, "noise": 0.5, "caution": None, "caution_codes": []}  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_batches_are_appended_and_read_back(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"scores.{fmt}"
    with ResultsFile(out, fmt, COLUMNS) as results:
        results.write([row("a.jpg"), row("b, c.jpg")])
        assert set(scored_paths(out, fmt, COLUMNS)) == {"a.jpg", "b, c.jpg"}  # on disk before the file is closed
    with ResultsFile(out, fmt, COLUMNS, append=True) as results:
        results.write([row("d.jpg")])
    assert scored_paths(out, fmt, COLUMNS) == {"a.jpg": "m", "b, c.jpg": "m", "d.jpg": "m"}
    lines = out.read_text().splitlines()
    assert len(lines) == (4 if fmt == "csv" else 3)  # one CSV header, however many batches
    with ResultsFile(out, fmt, COLUMNS) as results:  # not appending: a new file
        results.write([row("e.jpg")])
    assert set(scored_paths(out, fmt, COLUMNS)) == {"e.jpg"}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_line_cut_short_is_dropped_and_scored_again(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"scores.{fmt}"
    with ResultsFile(out, fmt, COLUMNS) as results:
        results.write([row("a.jpg"), row("b.jpg")])
    whole = out.read_bytes()
    out.write_bytes(whole[:-9])  # a process killed while writing b.jpg's row
    assert set(scored_paths(out, fmt, COLUMNS)) == {"a.jpg"}
    assert out.read_bytes() == whole[: whole.rstrip(b"\n").rfind(b"\n") + 1]  # cut back to its last whole line
    with ResultsFile(out, fmt, COLUMNS, append=True) as results:
        results.write([row("b.jpg")])
    assert out.read_bytes() == whole


def test_a_file_that_is_not_this_runs_results_is_refused_by_name(tmp_path: Path) -> None:
    assert scored_paths(tmp_path / "missing.csv", "csv", COLUMNS) == {}
    (tmp_path / "empty.csv").write_text("")
    assert scored_paths(tmp_path / "empty.csv", "csv", COLUMNS) == {}
    other = tmp_path / "other.csv"
    with ResultsFile(other, "csv", fieldnames([], {"frames_read", "faces_found", "aggregate"})) as results:
        results.write([row("clip.mp4")])
    with pytest.raises(DfdetectError, match=r"other\.csv: its columns .* are not this run's"):
        scored_paths(other, "csv", COLUMNS)
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps(row("a.jpg")) + "\nhello\n")
    with pytest.raises(DfdetectError, match=r"notes\.jsonl, line 2: not a row"):
        scored_paths(notes, "jsonl", COLUMNS)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\nno newline at the end")
    with pytest.raises(DfdetectError, match=r"binary\.csv: not a results file"):
        scored_paths(binary, "csv", COLUMNS)
    assert binary.read_bytes() == b"\xff\xfe\x00\nno newline at the end"  # refused files are left as they are


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_predict_killed_midway_resumes_to_the_uninterrupted_file(
    trained_run: Path,
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    images = str(tiny_dataset / "Test")
    flags = ["--model", str(trained_run), "--runtime", "torch", "--format", fmt]
    monkeypatch.setattr(cli, "PREDICT_STEP", 5)
    reference = tmp_path / f"reference.{fmt}"
    assert main(["predict", images, *flags, "--out", str(reference)]) == 0

    scored: list[int] = []
    crash_at = [3]
    score_files = cli.score_files

    def crash_on_the_third_batch(predictor: object, paths: list[Path], args: object) -> object:
        scored.append(len(paths))
        if len(scored) == crash_at[0]:
            raise KeyboardInterrupt  # Ctrl-C, or any crash, while the third batch is scored
        return score_files(predictor, paths, args)  # type: ignore[arg-type]

    out = tmp_path / f"scores.{fmt}"
    out.write_text("an older file\n")
    monkeypatch.setattr(cli, "score_files", crash_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt), caplog.at_level("INFO", logger="dfdetect"):
        main(["predict", images, *flags, "--out", str(out)])
    assert "exists: written anew (--resume would add" in caplog.text
    header = 1 if fmt == "csv" else 0
    assert len(out.read_text().splitlines()) == header + 10  # the two batches scored before it are kept
    with out.open("a") as handle:
        handle.write("tiny/Test/Real/cut_sho")  # and a row cut short

    scored.clear()
    crash_at[0] = 0  # no crash this time
    with caplog.at_level("INFO", logger="dfdetect"):
        assert main(["predict", images, *flags, "--out", str(out), "--resume"]) == 0
    assert "resuming: 10 of 24 file(s) already in" in caplog.text
    assert sum(scored) == 14  # only the files the file did not hold
    assert out.read_text() == reference.read_text()  # the same rows, in the same order, the header once

    assert main(["predict", images, *flags, "--out", str(out), "--resume"]) == 0  # nothing left: nothing added
    assert out.read_text() == reference.read_text()
    other = ["--model", "dfdc-lite0", "--format", fmt, "--out", str(out), "--resume"]
    assert main(["predict", images, *other]) == 2  # another model's scores are not mixed in
    assert f"{out} holds scores by own_cnn, not by dfdc-lite0 1.1.0" in capsys.readouterr().err
    assert out.read_text() == reference.read_text()


def test_batches_weigh_a_video_as_its_frames() -> None:
    images = [Path(f"{index}.jpg") for index in range(7)]
    assert cli.predict_batches(images, 3, frames=32) == [images[:3], images[3:6], images[6:]]
    clips = [Path("a.mp4"), Path("b.jpg"), Path("c.mov"), Path("d.jpg"), Path("e.jpg")]
    assert cli.predict_batches(clips, 3, frames=2) == [clips[:2], clips[2:4], clips[4:]]
    assert cli.predict_batches(clips, 64, frames=32) == [clips[:3], clips[3:]]
    assert cli.predict_batches([], 3, frames=32) == []


def test_resume_needs_a_streamed_results_file(trained_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    images = str(tiny_dataset / "Test" / "Real")
    assert main(["predict", "--model", str(trained_run), images, "--resume"]) == 2
    table = ["--format", "table", "--out", str(tmp_path / "scores.txt"), "--resume"]
    assert main(["predict", "--model", str(trained_run), images, *table]) == 2


def test_per_face_rows_follow_the_batches(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_photos import two_face_photo

    photos = tmp_path / "photos"
    photos.mkdir()
    first = two_face_photo(photos / "p0.png")
    for index in range(1, 6):
        (photos / f"p{index}.png").write_bytes(first.read_bytes())
    faces, out, whole = tmp_path / "faces.csv", tmp_path / "scores.csv", tmp_path / "all.json"
    flags = ["--model", str(trained_run), "--runtime", "torch", "--crop-face", "--per-face", str(faces)]
    assert main(["predict", str(photos), *flags, "--format", "json", "--out", str(whole)]) == 0
    reference = faces.read_text()
    assert len(reference.splitlines()) == 1 + 6 * 2  # a header, then both faces of each photo
    monkeypatch.setattr(cli, "PREDICT_STEP", 4)
    assert main(["predict", str(photos), *flags, "--format", "csv", "--out", str(out)]) == 0
    assert faces.read_text() == reference  # written batch by batch: one header, every batch's faces
    with out.open(newline="") as handle:
        streamed = [(r["path"], r["face"], r["box"]) for r in csv.DictReader(handle)]
    assert streamed == [(r["path"], str(r["face"]), r["box"]) for r in json.loads(whole.read_text())]
    complete = out.read_text()

    # Killed after the second batch's faces were written but before its rows: the faces go, and come back once.
    out.write_text("".join(complete.splitlines(keepends=True)[:5]))  # the header and the first batch's 4 rows
    with faces.open("a") as handle:
        handle.write(f"{photos / 'p5.png'},1,0 0 1")  # and a face's row cut short
    assert main(["predict", str(photos), *flags, "--format", "csv", "--out", str(out), "--resume"]) == 0
    assert faces.read_text() == reference and out.read_text() == complete


def test_a_side_files_rows_are_cut_back_to_the_scored_paths(tmp_path: Path) -> None:
    side = tmp_path / "faces.csv"
    side.write_bytes(b'path,face,box\r\n"a, 1.jpg",1,0 0 9 9\r\nb.jpg,1,1 1 9 9\r\n"a, 1.jpg",2,5 5 9 9\r\nc.jp')
    keep_rows_of(side, {"a, 1.jpg": "m"}, ["path", "face", "box"])
    assert side.read_bytes() == b'path,face,box\r\n"a, 1.jpg",1,0 0 9 9\r\n"a, 1.jpg",2,5 5 9 9\r\n'
    keep_rows_of(tmp_path / "missing.csv", {}, ["path"])  # nothing to cut
    assert not (tmp_path / "missing.csv").exists()
    notes = tmp_path / "notes.csv"
    notes.write_bytes(b"name,phone\r\nalice,123\r\n")
    with pytest.raises(DfdetectError, match=r"notes\.csv: its columns \(name, phone\) are not path, face, box"):
        keep_rows_of(notes, {}, ["path", "face", "box"])
    assert notes.read_bytes() == b"name,phone\r\nalice,123\r\n"  # a file that is not one is left alone
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\n")
    with pytest.raises(DfdetectError, match=r"binary\.csv: not a `--per-face` or `--per-frame` file"):
        keep_rows_of(binary, {}, ["path", "face", "box"])
