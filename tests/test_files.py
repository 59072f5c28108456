"""Atomic writes and output folders that never mix with a user's files."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from gan.errors import GanError
from gan.files import atomic_write, out_folder, remove_temp_files


def test_a_write_that_fails_leaves_the_old_file_and_names_the_file_not_its_temp(tmp_path):
    target = tmp_path / "grid.png"
    target.write_bytes(b"old")

    def full_disk(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(OSError) as error:
        atomic_write(target, full_disk)
    assert error.value.filename == str(target) and error.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_a_write_refused_by_a_read_only_folder_names_the_file_not_its_temp(tmp_path, monkeypatch):
    def refused(*args, **kwargs):  # a read-only folder refuses the clean-up too
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", refused)
    with pytest.raises(OSError) as error:
        atomic_write(tmp_path / "eval.json", lambda tmp: refused())
    assert error.value.filename == str(tmp_path / "eval.json") and error.value.errno == errno.EROFS


def test_the_temp_files_of_killed_writers_are_removed_and_nothing_else(tmp_path):
    (tmp_path / ".checkpoint-0000010.pt.123-456.tmp").write_bytes(b"half")
    (tmp_path / "checkpoint-0000005.pt").write_bytes(b"whole")
    (tmp_path / ".lock").write_text("1")
    remove_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "checkpoint-0000005.pt"]


def test_an_output_folder_with_files_is_refused_unless_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(GanError, match=r"already holds 1 entries \(e\.g\. holiday\.jpg\)"):
        out_folder(str(tmp_path / "out"), overwrite=False)
    assert out_folder(str(tmp_path / "out"), overwrite=True) == tmp_path / "out"
    (tmp_path / "file").write_text("x")
    with pytest.raises(GanError, match="is a file"):
        out_folder(str(tmp_path / "file"), overwrite=True)
