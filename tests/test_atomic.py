"""superconv.atomic: the one whole-file writer of results, checkpoints, tables, figures and the report."""

from __future__ import annotations

import pytest

from superconv.atomic import atomic_write, replacing, write_if_changed


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "summary.json"
    atomic_write(path, "old")  # creates the folder
    with pytest.raises(RuntimeError):
        with replacing(path) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_write_if_changed_leaves_identical_bytes_alone(tmp_path):
    path = tmp_path / "report.md"
    assert write_if_changed(path, b"a")
    mtime = path.stat().st_mtime_ns
    assert not write_if_changed(path, b"a") and path.stat().st_mtime_ns == mtime
    assert write_if_changed(path, b"b") and path.read_bytes() == b"b"
    atomic_write(path, "ü", fsync=True)
    assert path.read_bytes() == "ü".encode("utf-8")
