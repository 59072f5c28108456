"""The manifest.csv of an export folder, kept true however the export ends, so a later --overwrite can tell the
export's own files from the user's.

Each file is named in a hidden journal before it is written. An export that finishes writes manifest.csv and drops
the journal; one stopped by a signal or a full disk writes manifest.csv for the files that exist; one killed
outright leaves the journal. An --overwrite export removes the files either lists before it writes its own.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from gan.errors import GanError
from gan.files import remove_temp_files, write_fix, write_text
from gan.images import is_image_file

MANIFEST = "manifest.csv"
_JOURNAL = ".manifest-journal.csv"  # hidden: image-folder readers skip it


def check_folder_names(out: Path, names: list[str], fix: str) -> None:
    """Refuse, before any work, an output folder that would take the manifest's place."""
    for name in names:
        if name.lower() == MANIFEST:  # lower: a case-insensitive disk
            raise GanError(f"class {name!r} would be written to the folder {Path(out) / name}, where the export's "
                           f"{MANIFEST} goes: {fix}")


class Manifest:
    def __init__(self, out: Path, columns: list[str]):
        self.out, self.columns = out, columns
        self.path, self.journal = out / MANIFEST, out / _JOURNAL
        self.rows: list[list] = []  # of the files written or being written; the first column: the file
        self._journal = None

    def remove_previous_export(self) -> int:
        """Remove the files an earlier export into this folder listed (in its manifest, or in the journal of one
        that was killed) and the class folders that leaves empty; every other file stays. Returns the count."""
        own = set()
        for listing in (self.path, self.journal):
            if listing.is_file():
                own |= {self.out / name for name in _files_in(listing) if self._is_ours(name)}
        for file in own:
            file.unlink(missing_ok=True)
        for folder in {file.parent for file in own}:
            remove_temp_files(folder)  # of the images being written when an export was killed
        for folder in {file.parent for file in own} - {self.out}:
            try:
                folder.rmdir()
            except OSError:  # not empty: it holds files of the user's
                pass
        self.path.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)
        return len(own)

    def _is_ours(self, name: str) -> bool:
        """A name an export writes: an image file, relative, inside `out` (a manifest is a file anyone can edit), and
        still inside it once links are followed (a linked subfolder may lead to the user's own images)."""
        relative = Path(name)
        if not is_image_file(relative) or relative.is_absolute() or ".." in relative.parts:
            return False
        return (self.out / relative).resolve().is_relative_to(self.out.resolve())

    def will_write(self, files: list[str]) -> None:
        """Name these files (relative to `out`) in the journal, before they are written."""
        try:
            if self._journal is None:
                self._journal = open(self.journal, "a", newline="")
            csv.writer(self._journal).writerows([file] for file in files)
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as error:  # a full disk: name the file, as for the images
            raise OSError(error.errno, error.strerror, str(self.journal)) from None

    def finish(self) -> int:
        """Write manifest.csv for the files that exist (all of them after a complete export) and drop the journal;
        returns how many it lists. Call it once nothing is writing any more."""
        self.rows = [row for row in self.rows if (self.out / row[0]).is_file()]
        self.close()
        listed = {row[0] for row in self.rows}
        for name in _files_in(self.journal) if self.journal.is_file() else []:
            if name not in listed and self._is_ours(name):  # written by a task that then failed: no row to list it
                (self.out / name).unlink(missing_ok=True)
        buffer = io.StringIO()
        csv.writer(buffer).writerows([self.columns, *self.rows])
        write_text(self.path, buffer.getvalue())
        self.discard()
        return len(self.rows)

    def finish_early(self, planned: int, what: str = "images") -> str:
        """`finish` for an export that stopped before the end; says what was written and where it is listed."""
        try:
            return f"{self.finish()} of {planned} {what} were written, and {self.path} lists them"
        except OSError:  # the disk is full or the folder refuses writes: the journal, if written, is the record
            self.close()
            if not self.journal.is_file():
                return f"none of the {planned} {what} were written"
            return (f"the {what} written so far are listed in {self.journal}, so that the next --overwrite export "
                    f"into {self.out} removes them")

    def failed(self, error: OSError, planned: int, what: str = "images") -> GanError:
        """The error for a write that failed mid-export (a full disk, a read-only folder): what is kept, the fix."""
        return GanError(f"cannot write {error.filename} ({error.strerror}): {self.finish_early(planned, what)}. "
                        f"{write_fix(error, self.out)} (or choose another --out), then run the same command with "
                        f"--overwrite")

    def discard(self) -> None:
        """For an export that wrote nothing: no manifest, no journal."""
        self.close()
        self.journal.unlink(missing_ok=True)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _files_in(listing: Path) -> list[str]:
    with open(listing, newline="") as rows:
        return [row[0] for row in csv.reader(rows) if row and row[0] != "file"]
