"""Which image files a data folder holds, and their classes: one subfolder per class (ImageFolder layout), or a flat
folder of one class. Nothing is decoded here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from gan import images as imagefiles
from gan.errors import GanError


def check_folder(path: str, flag: str = "--data") -> Path:
    """The image folder a flag names, or an error that says what is wrong with it."""
    if not path:
        raise GanError(f"{flag} is required: a folder of images")
    root = Path(path).expanduser()
    if not root.exists():
        raise GanError(f"{flag[2:]} folder {root} does not exist: check the path given to {flag}")
    if not root.is_dir():
        raise GanError(f"{root} is a file, not a folder: {flag} takes a folder of images (or of class subfolders)")
    return root


def _is_image(entry: os.DirEntry) -> bool:
    """Named as an image and not a folder. A dangling link, a pipe or a device named so is listed all the same: its
    decoding says why it is skipped, where the user reads it, instead of the file vanishing unseen."""
    return not entry.name.startswith(".") and not entry.is_dir() and imagefiles.is_image_file(Path(entry.name))


def _images_under(folder: Path, unreadable: list[tuple[Path, str]]) -> list[Path]:
    """Every visible image file under `folder` (as `_is_image` takes them), sorted. Links to folders inside it are
    not followed (so a link back up cannot loop); a sub-folder that cannot be listed goes into `unreadable` with
    the reason."""
    found = []
    for parent, folders, files in os.walk(folder, onerror=lambda e: unreadable.append((Path(e.filename), e.strerror))):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [Path(parent) / name for name in files  # os.walk lists links to folders under `folders`
                  if not name.startswith(".") and imagefiles.is_image_file(Path(name))]
    return sorted(found)


def _listed(folder: Path, what: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as found:
            return list(found)
    except OSError as error:
        raise _unlistable(folder, what, error.strerror) from None


def _unlistable(folder: Path, what: str, reason: str) -> GanError:
    return GanError(f"cannot list {what} {folder} ({reason}): its images would be left out. Fix its permissions "
                    f"(the user running gan must be able to read and enter it), or move it out")


def _class_folders(root: Path, entries: list[os.DirEntry], log: Callable[[str], None]) -> list[Path]:
    """The visible subfolders of `root` that are classes of their own. A link to the data folder itself, to a folder
    around it, or to a folder that another class already holds would count images twice, under two labels."""
    top = root.resolve()
    kept: dict[Path, Path] = {}  # resolved -> class folder
    subfolders = [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]
    for folder in sorted(subfolders, key=lambda f: (f.is_symlink(), f)):  # real folders claim their images first
        target = folder.resolve()
        if target == top or target in top.parents:
            log(f"warning: ignoring {folder}: a link to the data folder itself (or a folder around it)")
            continue
        overlap = next((kept[other] for other in kept
                        if other == target or other in target.parents or target in other.parents), None)
        if overlap is not None:
            log(f"warning: ignoring {folder}: a link to {target}, whose images class {overlap.name!r} already holds")
            continue
        kept[target] = folder
    return sorted(kept.values())


def scan_folder(root: Path, log: Callable[[str], None] = print) -> tuple[list[Path], list[int], list[str]]:
    """List the image files: one subfolder per class (ImageFolder layout), or a flat folder (one class, its name).
    A class folder that cannot be listed is an error (the class would silently vanish); an unreadable folder
    inside a class is left out with a warning that names it."""
    entries = _listed(root, "the data folder")
    unreadable: list[tuple[Path, str]] = []
    folders = _class_folders(root, entries, log)
    classes = [(folder.name, _images_under(folder, unreadable)) for folder in folders]
    for folder, reason in unreadable:
        if folder in folders:  # the class would vanish, and a conditional run silently become unconditional
            raise _unlistable(folder, "class folder", reason)
        log(f"warning: cannot list {folder} ({reason}): the images in it are left out. Fix its permissions to use them")
    empty = [name for name, found in classes if not found]
    classes = [(name, found) for name, found in classes if found]
    top_level = sorted(Path(e.path) for e in entries if _is_image(e))
    if classes and empty:
        log(f"warning: ignoring subfolders with no image files: {', '.join(empty)}")
    if not classes:
        if not top_level:
            raise GanError(
                f"no images found in {root}: put images ({imagefiles.FORMATS}) directly in the folder, "
                f"or in one subfolder per class"
            )
        return top_level, [0] * len(top_level), [root.resolve().name]
    if top_level:
        log(f"warning: ignoring {len(top_level)} images directly in {root}, which has class subfolders; "
            f"move them into a class folder to use them")
    files = [f for _, found in classes for f in found]
    labels = [label for label, (_, found) in enumerate(classes) for _ in found]
    return files, labels, [name for name, _ in classes]
