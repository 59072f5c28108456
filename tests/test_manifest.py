"""An export's manifest: true however the export ends, so that --overwrite removes the export's files only."""

import pytest

from gan.errors import GanError
from gan.manifest import MANIFEST, Manifest, check_folder_names


def _export(out, names, written=None):
    """An export that journals `names` and writes `written` of them (default: all), with one row per file."""
    manifest = Manifest(out, ["file", "seed"])
    manifest.will_write(names)
    for seed, name in enumerate(names if written is None else written):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"png")
        manifest.rows.append([name, seed])
    return manifest


def test_a_finished_export_lists_what_it_wrote_and_drops_its_journal(tmp_path):
    manifest = _export(tmp_path, ["a/0.png", "b/1.png"])
    assert manifest.finish() == 2
    assert (tmp_path / MANIFEST).read_text().splitlines() == ["file,seed", "a/0.png,0", "b/1.png,1"]
    assert not manifest.journal.exists()


def test_a_file_named_but_never_listed_is_removed_when_the_export_finishes(tmp_path):
    manifest = _export(tmp_path, ["0.png", "1.png"], written=["0.png"])
    (tmp_path / "1.png").write_bytes(b"half")  # written by a task that then failed
    assert manifest.finish() == 1 and not (tmp_path / "1.png").exists()


def test_overwrite_removes_the_files_a_killed_export_journaled_and_keeps_the_users(tmp_path):
    _export(tmp_path, ["cats/0.png", "cats/1.png"]).close()  # killed: only the journal is on disk
    (tmp_path / "cats" / "mine.png").write_bytes(b"the user's")
    (tmp_path / "notes.txt").write_text("the user's")
    assert Manifest(tmp_path, ["file"]).remove_previous_export() == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cats", "mine.png", "notes.txt"]


def test_a_manifest_edited_to_name_files_outside_the_export_removes_nothing_there(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious.png").write_bytes(b"keep")
    (out / MANIFEST).write_text("file\n../precious.png\n/etc/passwd\nnotes.txt\n")
    assert Manifest(out, ["file"]).remove_previous_export() == 0
    assert (tmp_path / "precious.png").exists()


def test_overwrite_never_follows_a_linked_subfolder_out_of_the_export(tmp_path):
    photos, out = tmp_path / "photos" / "cats", tmp_path / "out"
    photos.mkdir(parents=True)
    (photos / "img000.png").write_bytes(b"a training image")
    out.mkdir()
    (out / "linkdir").symlink_to(photos, target_is_directory=True)
    (out / "cats").mkdir()
    (out / "cats" / "0.png").write_bytes(b"exported")
    (out / MANIFEST).write_text("file\nlinkdir/img000.png\ncats/0.png\n")
    assert Manifest(out, ["file"]).remove_previous_export() == 1
    assert (photos / "img000.png").read_bytes() == b"a training image" and not (out / "cats" / "0.png").exists()


def test_a_class_named_like_the_manifest_is_refused(tmp_path):
    with pytest.raises(GanError, match="where the export's manifest.csv goes: rename it"):
        check_folder_names(tmp_path, ["cats", "Manifest.CSV"], "rename it")


def test_an_export_into_a_folder_that_refuses_writes_is_told_so_and_not_to_free_space(tmp_path, monkeypatch):
    import errno
    import os

    import gan.manifest as manifest_module

    def read_only(path, text):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(manifest_module, "write_text", read_only)
    manifest = Manifest(tmp_path, ["file", "seed"])  # whose journal could not be written either
    error = manifest.failed(OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "0.png")), 5)
    assert str(error) == (f"cannot write {tmp_path / '0.png'} (Read-only file system): none of the 5 images were "
                          f"written. Make {tmp_path} writable (or choose another --out), then run the same command "
                          f"with --overwrite")
