"""Scanning a data folder: its layout (flat, or one subfolder per class), folder errors, class folders that cannot
be listed, unreadable sub-folders, and links that would count images twice. Permissions are simulated (the suite may
run as root, which reads everything)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from helpers import RED, RES, data_config, load_folder, solid, truncated_png, write_images
from gan.data import load_dataset
from gan.errors import GanError
from gan.folders import scan_folder
from gan.images import FORMATS

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


# --- 3. folder errors -----------------------------------------------------------------------------------------------


def test_empty_folder_names_the_folder_and_the_formats(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    (folder / "sub").mkdir()
    with pytest.raises(GanError) as error:
        load_folder(data_config(folder, tmp_path))
    assert str(error.value) == (
        f"no images found in {folder}: put images (PNG, JPEG, WebP, BMP, GIF, TIFF) directly in the folder, "
        f"or in one subfolder per class"
    )


def test_missing_folder_says_it_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(GanError) as error:
        load_folder(data_config(missing, tmp_path))
    assert str(error.value) == f"data folder {missing} does not exist: check the path given to --data"


def test_a_file_instead_of_a_folder_is_refused(tmp_path):
    file = solid(tmp_path / "one.png", RED)
    with pytest.raises(GanError) as error:
        load_folder(data_config(file, tmp_path))
    assert str(error.value) == (
        f"{file} is a file, not a folder: --data takes a folder of images (or of class subfolders)"
    )


def test_no_data_path_asks_for_data(tmp_path):
    cfg = data_config(tmp_path, tmp_path)
    cfg.path = ""
    with pytest.raises(GanError, match=r"^--data is required: a folder of images$"):
        load_folder(cfg)


def test_folder_of_only_bad_images_says_no_usable_image(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_text("text")
    truncated_png(folder / "c.png")
    lines: list[str] = []
    with pytest.raises(GanError) as error:
        load_dataset(data_config(folder, tmp_path), log=lines.append)
    assert str(error.value) == (
        f"no usable image in {folder}: all 3 image files were skipped (reasons above). "
        f"Supported formats: PNG, JPEG, WebP, BMP, GIF, TIFF."
    )
    assert lines == [
        "skipped a.png: empty file (0 bytes)",
        f"skipped b.jpg: not an image (or not one of {FORMATS})",
        "skipped c.png: truncated file",
        "0 images ready, 3 of 3 files skipped",
    ]


# --- 4. layout: flat folder or one subfolder per class --------------------------------------------------------------


def test_flat_folder_is_one_class_named_after_the_folder(flat_folder, tmp_path):
    dataset, lines = load_folder(data_config(flat_folder, tmp_path))
    assert dataset.class_names == ["flat"]
    assert dataset.labels.tolist() == [0] * 10
    assert dataset.class_counts == [10]
    assert len(dataset) == 10
    assert dataset.files == [f"img{i:03d}.png" for i in range(10)]
    assert lines == ["10 images ready"]


def test_flat_folder_given_as_dot_is_named_after_the_real_folder(flat_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(flat_folder)
    files, labels, classes = scan_folder(Path("."), log=lambda line: None)
    assert classes == ["flat"]
    assert len(files) == 10 and labels == [0] * 10


def test_class_subfolders_give_sorted_class_names_and_labels(class_folder, tmp_path):
    dataset, lines = load_folder(data_config(class_folder, tmp_path))
    assert dataset.class_names == ["cats", "dogs"]
    assert dataset.class_counts == [6, 5]
    assert dataset.labels.tolist() == [0] * 6 + [1] * 5
    assert dataset.files == [f"cats/img{i:03d}.png" for i in range(6)] + [f"dogs/img{i:03d}.png" for i in range(5)]
    assert dataset.images.shape == (11, 3, RES, RES)
    assert lines == ["11 images ready"]


def test_class_order_is_sorted_not_creation_order_and_nested_images_count(tmp_path):
    root = tmp_path / "animals"
    for name, count in (("zebra", 1), ("mango", 2), ("Apple", 3)):
        write_images(root / name, count, seed=count)
    write_images(root / "mango" / "ripe" / "very", 2, seed=9)  # deeper folders belong to their top class folder
    (root / "empty_class").mkdir()  # no images: not a class
    (root / "empty_class" / "notes.txt").write_text("x")

    files, labels, classes = scan_folder(root, log=lambda line: None)
    assert classes == ["Apple", "mango", "zebra"]
    assert labels == [0, 0, 0, 1, 1, 1, 1, 2]
    dataset, _ = load_folder(data_config(root, tmp_path))
    assert dataset.class_counts == [3, 4, 1]
    assert dataset.files[3:7] == [
        "mango/img000.png", "mango/img001.png", "mango/ripe/very/img000.png", "mango/ripe/very/img001.png",
    ]


def test_top_level_images_beside_class_folders_are_ignored_with_a_warning(class_folder, tmp_path):
    write_images(class_folder, 2, seed=7, suffix=".jpg")
    dataset, lines = load_folder(data_config(class_folder, tmp_path))
    assert lines[0] == (
        f"warning: ignoring 2 images directly in {class_folder}, which has class subfolders; "
        f"move them into a class folder to use them"
    )
    assert lines[1:] == ["11 images ready"]
    assert dataset.class_names == ["cats", "dogs"]
    assert not any("/" not in f for f in dataset.files)


def test_class_whose_images_are_all_bad_keeps_its_label_with_a_warning(tmp_path):
    root = tmp_path / "pets"
    write_images(root / "cats", 2)
    (root / "dogs").mkdir()
    (root / "dogs" / "a.png").write_bytes(b"")
    write_images(root / "owls", 1)
    dataset, lines = load_folder(data_config(root, tmp_path))
    assert dataset.class_names == ["cats", "dogs", "owls"]
    assert dataset.class_counts == [2, 0, 1]
    assert dataset.labels.tolist() == [0, 0, 2]
    assert lines == [
        "skipped dogs/a.png: empty file (0 bytes)",
        "3 images ready, 1 of 4 files skipped",
        "warning: class folder 'dogs' has no usable image",
    ]
