"""Atomic file writes: a reader (or a crash) never sees half a checkpoint, image or manifest."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable


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
        if durable:
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))
