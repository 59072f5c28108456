"""Export: synthetic images from a trained generator, one seed per image, encoded and written in parallel, atomically.

Image i uses noise drawn from its own generator seeded S+i on the CPU, so an export does not depend on the batch
size or the device, and any single image can be regenerated from its seed.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from gan import device as devices
from gan.checkpoint import load_checkpoint
from gan.config import RunConfig, SampleConfig
from gan.errors import GanError
from gan.files import atomic_write, write_text
from gan.generate import generate, load_generator, spread, to_pixels
from gan.tracking import GRID_SIZE, image_grid, progress_bar, save_png

_PIL_FORMATS = {"png": ("PNG", {}), "jpg": ("JPEG", {"quality": 95})}


@dataclass
class ExportResult:
    out: Path
    files: list[Path]
    manifest: Path
    grid: Path | None


def plan_classes(cfg: SampleConfig, trained: RunConfig, source: Path) -> list[int] | None:
    """The class index of each image to export, or None for an unconditional model."""
    names = trained.data.class_names
    if not trained.num_classes:
        if cfg.classes or cfg.per_class:
            flag = "--class" if cfg.classes else "--per-class"
            raise GanError(f"{flag}: {source} is an unconditional model, which cannot make a chosen class; "
                           f"use --count (train with class folders and --conditional on for labelled images)")
        return None
    unknown = [name for name in cfg.classes if name not in names]
    if unknown:
        raise GanError(f"unknown class {', '.join(map(repr, unknown))}: {source} knows {', '.join(names)}")
    chosen = [names.index(name) for name in dict.fromkeys(cfg.classes)] or list(range(len(names)))
    if cfg.per_class:
        counts = [cfg.per_class] * len(chosen)
    else:  # like the training data: small classes stay small unless --per-class asks otherwise
        counts = spread(cfg.count, [trained.data.class_counts[c] for c in chosen])
    return [c for c, n in zip(chosen, counts) for _ in range(n)]


def _encode_and_write(pixels: np.ndarray, path: Path, fmt: str) -> None:
    name, options = _PIL_FORMATS[fmt]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=name, **options)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


class _GridPicker:
    """Keeps the preview grid's images as they stream past: the first 64, or the first row of 8 of each class."""

    def __init__(self, labels: list[int] | None, rows: int = 16):
        self.labels, self.rows = labels, rows
        self.kept: dict[int | None, list[torch.Tensor]] = {}

    def offer(self, images: torch.Tensor, first_index: int) -> None:
        for i, image in enumerate(images):
            key = self.labels[first_index + i] if self.labels is not None else None
            limit = 8 if self.labels is not None else GRID_SIZE
            row = self.kept.get(key)
            if row is None and len(self.kept) < self.rows:
                row = self.kept[key] = []
            if row is not None and len(row) < limit:
                row.append(image)

    def images(self) -> torch.Tensor:
        return torch.stack([image for row in self.kept.values() for image in row])


def prepare_out(out: str, overwrite: bool) -> Path:
    """Create the output folder; refuse one that already holds files unless --overwrite."""
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise GanError(f"--out {folder} is a file; give a folder to write the images into")
    existing = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
    if existing and not overwrite:
        raise GanError(
            f"--out {folder} already holds {len(existing)} entries (e.g. {existing[0]}); choose a new or empty "
            f"folder, or pass --overwrite to write into it (files with the same names are replaced)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanError(f"cannot create --out {folder} ({error.strerror})") from None
    return folder


def export(cfg: SampleConfig, log: Callable[[str], None] = print) -> ExportResult:
    """Generate images from a run or checkpoint into cfg.out (one folder per class for a conditional model),
    with manifest.csv and an optional preview grid."""
    cfg.validate()
    checkpoint = load_checkpoint(cfg.run or cfg.checkpoint)
    trained = checkpoint.saved_config()
    labels = plan_classes(cfg, trained, checkpoint.path)
    device = devices.pick_device(cfg.device)
    G = load_generator(checkpoint, device)
    grid_file = Path(cfg.grid).expanduser() if cfg.grid else None
    if grid_file and grid_file.is_dir():
        raise GanError(f"--grid {grid_file} is a folder; give a file name such as {grid_file / 'preview.png'}")
    out = prepare_out(cfg.out, cfg.overwrite)
    names = trained.data.class_names
    count = len(labels) if labels is not None else cfg.count
    seeds = list(range(cfg.seed, cfg.seed + count))
    if labels is None:  # flat, like the input; a one-class model's images still carry their class
        classes = [names[0] if len(names) == 1 else ""] * count
        files = [out / f"seed{seed:06d}.{cfg.format}" for seed in seeds]
    else:  # <out>/<class>/: the input's ImageFolder layout, so it merges into the training set
        classes = [names[c] for c in labels]
        for name in dict.fromkeys(classes):
            (out / name).mkdir(exist_ok=True)
        files = [out / name / f"seed{seed:06d}.{cfg.format}" for name, seed in zip(classes, seeds)]
    log(f"exporting {count} images from {checkpoint.path} (step {checkpoint.step}) to {out}")

    grid = _GridPicker(labels)
    pending: deque = deque()
    workers = cfg.workers or devices.cpu_cores()
    with ThreadPoolExecutor(workers) as pool, progress_bar(count, "exporting", unit="img") as bar:
        written = 0
        for images in generate(G, seeds, labels, cfg.batch_size, device):
            grid.offer(images, written)
            for pixels in to_pixels(images):
                pending.append(pool.submit(_encode_and_write, pixels, files[written], cfg.format))
                written += 1
            while len(pending) > 4 * cfg.batch_size:  # bound memory: at most a few batches in flight
                pending.popleft().result()
                bar.update()
        while pending:
            pending.popleft().result()
            bar.update()

    manifest = out / "manifest.csv"
    rows = [[f.relative_to(out).as_posix(), seed, name, str(checkpoint.path), checkpoint.step]
            for f, seed, name in zip(files, seeds, classes)]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["file", "seed", "class", "checkpoint", "step"], *rows])
    write_text(manifest, buffer.getvalue())
    if grid_file:
        grid_file.parent.mkdir(parents=True, exist_ok=True)
        save_png(image_grid(grid.images()), grid_file)
    return ExportResult(out, files, manifest, grid_file)
