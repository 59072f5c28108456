"""Atomic file writes: a reader (or a crash) never sees half a checkpoint, image or manifest."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a hidden temp file beside `path`, then rename it over `path`."""
    path = Path(path)
    # Hidden and unique per thread, so image-folder readers skip it and parallel writers never collide.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))
