"""Atomic file writes (a reader, or a crash, never sees half a checkpoint, image or manifest) and output folders
that never mix with a user's files."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

from gan.errors import GanError


def atomic_write(path: Path, write: Callable[[Path], None], durable: bool = False) -> None:
    """Call `write(tmp)` on a hidden temp file beside `path`, then rename it over `path`.

    `durable` also flushes the file and the rename to disk, for files whose loss after a power cut would cost
    work (checkpoints, since older ones are deleted right after).
    """
    path = Path(path)
    # Hidden and unique per thread, so image-folder readers skip it and parallel writers never collide.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write(tmp)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno and error.filename in (None, str(tmp)):  # name the real file
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    if durable:
        _fsync(path.parent)


def remove_temp_files(folder: Path) -> None:
    """Remove the temp files of writers killed mid-write (call it only where no other writer is at work)."""
    for stale in Path(folder).glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def human_size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def out_folder(out: str, overwrite: bool) -> Path:
    """The output folder a command will write into, refused if it is a file or (without --overwrite) holds files."""
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise GanError(f"--out {folder} is a file; give a folder to write into")
    existing = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
    if existing and not overwrite:
        raise GanError(
            f"--out {folder} already holds {len(existing)} entries (e.g. {existing[0]}); choose a new or empty "
            f"folder, or pass --overwrite to write into it (what gan wrote there before is replaced; other files stay)"
        )
    return folder


def prepare_out(out: str, overwrite: bool) -> Path:
    """Create the output folder; refuse one that already holds files unless --overwrite."""
    folder = out_folder(out, overwrite)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanError(f"cannot create --out {folder} ({error.strerror})") from None
    return folder
