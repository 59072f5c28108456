"""Atomic file writes (a reader, or a crash, never sees half a checkpoint, image or manifest) and output folders
that never mix with a user's files."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path
from typing import Callable

import torch

from gan.errors import GanError

try:
    import fcntl
except ImportError:  # Windows: folders are not locked there
    fcntl = None

LOCK = ".lock"  # held by the process writing the folder; holds its PID


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
        with contextlib.suppress(OSError):  # a read-only folder refuses even this
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno and error.filename in (None, tmp, str(tmp)):  # the real file
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    if durable:
        _fsync(path.parent)


def save_torch(obj, path: Path, durable: bool = False) -> None:
    """torch.save, atomically, into a file Python opens: a refused or full folder is then an OSError naming the
    file, as for every other write (torch's own writer reports it as a RuntimeError with no name)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            torch.save(obj, file)

    atomic_write(path, write, durable)


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


def is_refused(error: BaseException) -> bool:
    """A write refused by permissions or a read-only filesystem, which no amount of free space fixes."""
    return getattr(error, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS)


def write_fix(error: BaseException, folder: Path | str) -> str:
    """The first step that lets a failed write into `folder` succeed."""
    return f"Make {folder} writable" if is_refused(error) else "Free some space"


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


class FolderLock:
    """The one process allowed to write a folder (a run, an export). The operating system drops the lock when that
    process ends, however it ends (kill -9 included), so a lock is never left behind."""

    def __init__(self, folder: Path, doing: str, why: str, pid_file: bool = True):
        """`doing`: what the holder does to the folder ("trained"); `why`: the harm of a second writer, and the fix.
        With `pid_file` the lock is a hidden file that names the holder's PID; without, the folder itself is locked
        and nothing is added to it (an export folder goes into a user's training set as it is)."""
        folder = Path(folder)
        path = folder / LOCK if pid_file else folder
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if pid_file else os.open(path, os.O_RDONLY)
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = f" (PID {os.read(self.fd, 32).decode().strip() or 'unknown'})" if pid_file else ""
            self.release()
            raise GanError(f"{folder} is being {doing} by another process{holder}: {why}") from None
        except OSError as error:  # some network filesystems refuse locks
            self.release()
            raise GanError(f"cannot lock {path} ({error.strerror}): put --out on a filesystem that supports file "
                           f"locks") from None
        if pid_file:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())
        remove_temp_files(folder)  # holding the lock, no other process writes here

    def release(self) -> None:
        os.close(self.fd)
