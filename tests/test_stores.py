"""dfdetect.stores: atomic writes, and the versioned JSON stores that faces and landmarks share."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfdetect.errors import DatasetError
from dfdetect.stores import atomic_write, read_store, write_store


def test_a_store_round_trips(tmp_path: Path) -> None:
    file = tmp_path / "sub" / "found.json"  # the folder is made
    write_store(file, 3, {"detector": "x", "images": {"a.jpg": [1.5, None]}})
    assert read_store(file, "test", 3, "images") == {"format": 3, "detector": "x", "images": {"a.jpg": [1.5, None]}}
    assert [path.name for path in file.parent.iterdir()] == ["found.json"]  # no temporary left behind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "cannot read the test file"),
        ("[1, 2]", "not a dfdetect test file \\(format 3\\)"),
        ('{"format": 2, "images": {}}', "not a dfdetect test file \\(format 3\\)"),
        ('{"format": 3, "images": []}', "not a dfdetect test file"),
        ('{"format": 3}', "not a dfdetect test file"),
    ],
)
def test_a_bad_store_is_named(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "found.json"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=expected) as raised:
        read_store(file, "test", 3, "images")
    assert str(file) in str(raised.value) and "delete it" in str(raised.value)


def test_a_missing_store_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="found.json: cannot read the test file"):
        read_store(tmp_path / "found.json", "test", 1, "images")


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    file = tmp_path / "found.json"
    write_store(file, 1, {"images": {"kept": 1}})

    def crash(temporary: Path) -> None:
        temporary.write_text("half", encoding="utf-8")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(file, crash)
    assert read_store(file, "test", 1, "images")["images"] == {"kept": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["found.json"]
