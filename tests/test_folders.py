"""Scanning a data folder: class folders that cannot be listed, unreadable sub-folders, and links that would count
images twice. Permissions are simulated (the suite may run as root, which reads everything)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from helpers import write_images
from gan.errors import GanError
from gan.folders import scan_folder


def scan(root: Path) -> tuple[list[str], list[int], list[str], list[str]]:
    lines: list[str] = []
    files, labels, classes = scan_folder(root, lines.append)
    return [f.relative_to(root).as_posix() for f in files], labels, classes, lines


def refuse_listing(monkeypatch, *folders: Path) -> None:
    """os.scandir fails with EACCES on `folders`, as it does for a user without read permission."""
    real = os.scandir
    refused = {str(f) for f in folders}

    def scandir(path="."):
        if os.fspath(path) in refused:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_class_folder_that_cannot_be_listed_is_an_error_naming_it(class_folder, monkeypatch):
    refuse_listing(monkeypatch, class_folder / "dogs")
    with pytest.raises(GanError) as error:
        scan(class_folder)
    assert str(error.value) == (
        f"cannot list class folder {class_folder / 'dogs'} (Permission denied): its images would be left out. Fix "
        f"its permissions (the user running gan must be able to read and enter it), or move it out")


def test_a_data_folder_that_cannot_be_listed_is_an_error_naming_it(class_folder, monkeypatch):
    refuse_listing(monkeypatch, class_folder)
    with pytest.raises(GanError, match=rf"^cannot list the data folder {class_folder} \(Permission denied\)"):
        scan(class_folder)


def test_a_sub_folder_that_cannot_be_listed_is_named_with_its_reason(class_folder, monkeypatch):
    hidden_from_us = class_folder / "cats" / "more"
    write_images(hidden_from_us, 2, seed=3)
    refuse_listing(monkeypatch, hidden_from_us)
    files, labels, classes, lines = scan(class_folder)
    assert classes == ["cats", "dogs"] and len(files) == 11
    assert lines == [f"warning: cannot list {hidden_from_us} (Permission denied): the images in it are left out. "
                     f"Fix its permissions to use them"]


def test_a_link_to_the_data_folder_itself_is_not_a_class(class_folder):
    (class_folder / "everything").symlink_to(class_folder)
    (class_folder / "above").symlink_to(class_folder.parent)
    files, labels, classes, lines = scan(class_folder)
    assert classes == ["cats", "dogs"] and len(files) == 11
    assert lines == [f"warning: ignoring {class_folder / 'above'}: a link to the data folder itself (or a folder "
                     f"around it)",
                     f"warning: ignoring {class_folder / 'everything'}: a link to the data folder itself (or a "
                     f"folder around it)"]


def test_a_link_to_another_class_or_into_it_is_not_a_second_class(class_folder):
    write_images(class_folder / "cats" / "kittens", 2, seed=4)
    (class_folder / "aaa-cats-again").symlink_to(class_folder / "cats")  # sorts first, and still loses to the folder
    (class_folder / "kittens").symlink_to(class_folder / "cats" / "kittens")
    files, labels, classes, lines = scan(class_folder)
    assert classes == ["cats", "dogs"] and len(files) == 13
    assert lines == [
        f"warning: ignoring {class_folder / 'aaa-cats-again'}: a link to {class_folder / 'cats'}, whose images class "
        f"'cats' already holds",
        f"warning: ignoring {class_folder / 'kittens'}: a link to {class_folder / 'cats' / 'kittens'}, whose images "
        f"class 'cats' already holds"]


def test_a_linked_class_folder_from_elsewhere_is_a_class(class_folder, tmp_path):
    write_images(tmp_path / "elsewhere" / "birds", 3, seed=5)
    (class_folder / "birds").symlink_to(tmp_path / "elsewhere" / "birds")
    files, labels, classes, lines = scan(class_folder)
    assert classes == ["birds", "cats", "dogs"] and labels.count(0) == 3 and lines == []


def test_a_link_inside_a_class_back_to_the_root_does_not_loop(class_folder):
    (class_folder / "cats" / "loop").symlink_to(class_folder)
    files, labels, classes, lines = scan(class_folder)
    assert len(files) == 11 and lines == []
