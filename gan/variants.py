"""`gan augment`: classical variants of every image in a folder, written in the same layout with a manifest, so
they drop into a training set like the synthetic images do."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torchvision.transforms.v2.functional as F

from gan.classical import augment_image, describe
from gan.command_config import VariantsConfig, check_variants_total, parse_ops
from gan.folders import check_folder, scan_folder
from gan.device import cpu_cores
from gan.errors import GanError
from gan.files import atomic_write, prepare_out
from gan.images import BadImage, open_rgb
from gan.manifest import Manifest, check_folder_names
from gan.stopping import StopSignals
from gan.tracking import progress_bar

_JPEG = (".jpg", ".jpeg")


@dataclass
class VariantsResult:
    out: Path
    files: list[Path]
    manifest: Path
    skipped: list[tuple[str, str]]  # (source file, reason)


def variant_names(root: Path, files: list[Path]) -> list[str]:
    """Each source's output stem relative to the root, unique even where names differ only in extension or case
    ('cats/tom', then 'cats/tom-2' for cats/tom.jpg beside cats/tom.png)."""
    taken, names = set(), []
    for f in files:
        stem = f.relative_to(root).with_suffix("").as_posix()
        name, n = stem, 1
        while name.lower() in taken:  # lower: on a case-insensitive disk Tom and tom are one file
            n += 1
            name = f"{stem}-{n}"
        taken.add(name.lower())
        names.append(name)
    return names


def _make_variants(source: Path, name: str, index: int, cfg: VariantsConfig, out: Path) -> list[list] | str:
    """Write cfg.per_image variants of one image; their manifest rows, or the reason the source was skipped."""
    try:
        rgb, gray = open_rgb(str(source), cfg.background, cfg.max_pixels)
    except BadImage as bad:
        return str(bad)
    except Exception as error:  # a malformed file can make a format plugin raise anything; skip it, never crash
        return f"cannot be decoded ({type(error).__name__}: {error})"
    try:
        return _write_variants(F.pil_to_tensor(rgb.convert("L") if gray else rgb), source, name, index, cfg, out)
    except OSError:
        raise  # a full disk or a permission problem stops the run, naming the file
    except Exception as error:  # an image no operation can handle must not stop the others
        return f"cannot be augmented ({type(error).__name__}: {error})"


def _suffix(source: Path) -> str:
    """A JPEG's variants are JPEGs (saving them as PNG would keep its artefacts at 5x the size); the rest, PNGs."""
    return ".jpg" if source.suffix.lower() in _JPEG else ".png"


def _write_variants(image: torch.Tensor, source: Path, name: str, index: int, cfg: VariantsConfig,
                    out: Path) -> list[list]:
    jpeg = _suffix(source) == ".jpg"
    ops = parse_ops(cfg.ops)
    rows = []
    for k in range(cfg.per_image):
        seed = cfg.seed + index * cfg.per_image + k
        variant, applied = augment_image(image, ops, cfg.strength, torch.Generator().manual_seed(seed))
        path = out / f"{name}_aug{k:02d}{_suffix(source)}"
        path.parent.mkdir(parents=True, exist_ok=True)  # here, so that an export stopped early leaves no empty class
        buffer = io.BytesIO()
        F.to_pil_image(variant).save(buffer, format="JPEG" if jpeg else "PNG", **({"quality": 95} if jpeg else {}))
        atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
        rows.append([path.relative_to(out).as_posix(), seed, describe(applied)])
    return rows


def export_variants(cfg: VariantsConfig, log: Callable[[str], None] = print) -> VariantsResult:
    """Write cfg.per_image classical variants of every image under cfg.data into cfg.out, with manifest.csv."""
    cfg.validate()
    root = check_folder(cfg.data)
    out_path = Path(cfg.out).expanduser().resolve()
    if out_path == root.resolve() or root.resolve() in out_path.parents:
        raise GanError(f"--out {cfg.out} is inside --data {cfg.data}: the variants would mix into the originals; "
                       f"choose a folder outside it")
    files, labels, class_names = scan_folder(root, log)
    planned = check_variants_total(cfg.per_image, len(files))
    names = variant_names(root, files)
    check_folder_names(cfg.out, [name.split("/")[0] for name in names if "/" in name],
                       f"rename that folder in {root}")
    out = prepare_out(cfg.out, cfg.overwrite)
    manifest = Manifest(out, ["file", "source", "class", "seed", "ops"])
    if cfg.overwrite and (removed := manifest.remove_previous_export()):
        log(f"removed the {removed} images of the earlier export in {out} (other files stay)")
    log(f"writing {cfg.per_image} variants of each of {len(files)} images to {out}")
    skipped: list[tuple[str, str]] = []
    try:
        # Every variant is named in the manifest's journal up front: files are written by many threads at once.
        manifest.will_write([f"{name}_aug{k:02d}{_suffix(f)}" for f, name in zip(files, names)
                             for k in range(cfg.per_image)])
        with StopSignals() as stop:
            _write_variants_of_all(files, labels, names, class_names, root, cfg, out, manifest, skipped, stop)
    except OSError as error:
        raise manifest.failed(error, planned, "variants") from None
    except KeyboardInterrupt:
        manifest.finish_early(planned, "variants")
        raise
    for source, reason in skipped:
        log(f"skipped {source}: {reason}")
    if stop.requested:
        raise GanError(f"stopped by a signal: {manifest.finish_early(planned, 'variants')}. Run the same command with "
                       f"--overwrite to write them all")
    if not manifest.rows:
        manifest.discard()
        raise GanError(f"no image in {root} could be read ({len(skipped)} skipped, reasons above); nothing was written")
    manifest.finish()
    return VariantsResult(out, [out / row[0] for row in manifest.rows], manifest.path, skipped)


def _write_variants_of_all(files: list[Path], labels: list[int], names: list[str], class_names: list[str], root: Path,
                           cfg: VariantsConfig, out: Path, manifest: Manifest, skipped: list, stop: StopSignals) -> None:
    """The variants of every source, in worker threads. On a signal or an error, the sources not yet started are
    dropped and those being worked on finish, so that every file written is in the manifest's rows."""

    def collect(source: Path, label: int, result: list[list] | str) -> None:
        relative = source.relative_to(root).as_posix()
        if isinstance(result, str):
            skipped.append((relative, result))
        else:
            manifest.rows += [[file, relative, class_names[label], seed, ops] for file, seed, ops in result]

    with ThreadPoolExecutor(cfg.workers or cpu_cores()) as pool, progress_bar(len(files), "augmenting", "img") as bar:
        jobs = [pool.submit(_make_variants, f, name, i, cfg, out) for i, (f, name) in enumerate(zip(files, names))]
        done = 0
        try:
            for source, label, job in zip(files, labels, jobs):
                if stop.requested:
                    break
                collect(source, label, job.result())
                done += 1
                bar.update()
        finally:
            pool.shutdown(cancel_futures=True)  # waits for the running ones
            for source, label, job in list(zip(files, labels, jobs))[done:]:
                if not job.cancelled() and job.exception() is None:
                    collect(source, label, job.result())
