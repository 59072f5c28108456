"""Export: synthetic images from a trained generator, one seed per image, encoded and written in parallel, atomically.

Image i uses noise drawn from its own generator seeded S+i on the CPU, so an export does not depend on the batch
size or the device, and any single image can be regenerated from its seed.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from gan import device as devices
from gan.checkpoint import load_checkpoint, pick_checkpoint
from gan.config import RunConfig, SampleConfig
from gan.errors import GanError
from gan.evaluate import copy_filter, training_images
from gan.features import load_feature_space
from gan.files import atomic_write, prepare_out, write_text
from gan.generate import generate, load_generator, spread, to_pixels
from gan.tracking import GRID_SIZE, image_grid, progress_bar, save_png

_PIL_FORMATS = {"png": ("PNG", {}), "jpg": ("JPEG", {"quality": 95})}
_BATCHES_AHEAD = 2  # encoded while the next batches are generated; also bounds the memory in flight
MAX_TRIES = 10  # with --reject-copies, rounds of making rejected images again before giving up


@dataclass
class ExportResult:
    out: Path
    files: list[Path]
    manifest: Path
    grid: Path | None
    rejected: int = 0  # near-copies skipped by --reject-copies


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


def _encode_and_write(pixels: np.ndarray, files: list[Path], fmt: str) -> None:
    """A worker thread's share of a batch: one task per thread and batch, since a task per image cost about as
    much as encoding the image."""
    name, options = _PIL_FORMATS[fmt]
    for image, file in zip(pixels, files):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=name, **options)
        atomic_write(file, lambda tmp: tmp.write_bytes(buffer.getvalue()))


class _GridPicker:
    """Keeps the preview grid's images as they stream past: the first 64, or the first row of 8 of each class."""

    def __init__(self, conditional: bool, rows: int = 16):
        self.limit, self.rows = (8 if conditional else GRID_SIZE), rows
        self.kept: dict[int | None, list[torch.Tensor]] = {}

    def offer(self, images: torch.Tensor, labels: list[int | None]) -> None:
        for image, key in zip(images, labels):
            row = self.kept.get(key)
            if row is None and len(self.kept) < self.rows:
                row = self.kept[key] = []
            if row is not None and len(row) < self.limit:
                row.append(image)

    def images(self) -> torch.Tensor:
        return torch.stack([image for row in self.kept.values() for image in row])


def _batches(G: nn.Module, plan: list[int | None], first_seed: int, batch_size: int, device: torch.device,
             is_copy: Callable[[torch.Tensor], torch.Tensor] | None) -> Iterator[tuple[torch.Tensor, list, list, int]]:
    """(images, seeds, labels, number rejected) batches for the classes in `plan` (None: unconditional); image i
    of the plan uses seed first_seed + i. With `is_copy`, the rejected images are made again, in plan order, from
    the seeds after the plan, for at most MAX_TRIES rounds; which seed makes which image never depends on
    batch_size."""
    todo, seed = list(range(len(plan))), first_seed
    for _ in range(MAX_TRIES if is_copy else 1):
        rejected = []
        for start in range(0, len(todo), batch_size):
            positions = todo[start : start + batch_size]
            seeds = list(range(seed + start, seed + start + len(positions)))
            labels = [plan[i] for i in positions]
            images = next(generate(G, seeds, None if labels[0] is None else labels, len(seeds), device))
            copies = is_copy(images).tolist() if is_copy else [False] * len(seeds)
            rejected += [i for i, copy in zip(positions, copies) if copy]
            kept = [j for j, copy in enumerate(copies) if not copy]
            yield images[kept], [seeds[j] for j in kept], [labels[j] for j in kept], len(seeds) - len(kept)
        seed += len(todo)
        todo = rejected
        if not todo:
            return


def _finish(batch: tuple[list[Future], int], bar) -> None:
    futures, size = batch
    for future in futures:
        future.result()
    bar.update(size)


def _file_for(out: Path, names: list[str], label: int | None, seed: int, fmt: str) -> Path:
    """<out>/<class>/seedNNNNNN.png for a conditional model (the input's ImageFolder layout, so it merges into the
    training set); flat, like the input, otherwise."""
    if label is None:
        return out / f"seed{seed:06d}.{fmt}"
    folder = out / names[label]
    folder.mkdir(exist_ok=True)
    return folder / f"seed{seed:06d}.{fmt}"


def _copy_filter(trained: RunConfig, device: torch.device, batch_size: int, log) -> Callable:
    """is_copy(images) for --reject-copies: near-copies of the run's training images, in the run's feature space."""
    space = load_feature_space(trained.metrics, device, log)
    return copy_filter(space, training_images(trained, "--reject-copies", log), device, batch_size)


def export(cfg: SampleConfig, log: Callable[[str], None] = print) -> ExportResult:
    """Generate images from a run or checkpoint into cfg.out (one folder per class for a conditional model),
    with manifest.csv and an optional preview grid."""
    cfg.validate()
    checkpoint = load_checkpoint(pick_checkpoint(cfg.run, cfg.checkpoint))
    trained = checkpoint.saved_config()
    labels = plan_classes(cfg, trained, checkpoint.path)
    device = devices.pick_device(cfg.device)
    G = load_generator(checkpoint, device)
    grid_file = Path(cfg.grid).expanduser() if cfg.grid else None
    if grid_file and grid_file.is_dir():
        raise GanError(f"--grid {grid_file} is a folder; give a file name such as {grid_file / 'preview.png'}")
    is_copy = _copy_filter(trained, device, cfg.batch_size, log) if cfg.reject_copies else None
    out = prepare_out(cfg.out, cfg.overwrite)
    names = trained.data.class_names
    plan = labels if labels is not None else [None] * cfg.count
    log(f"exporting {len(plan)} images from {checkpoint.path} (step {checkpoint.step}) to {out}")

    grid = _GridPicker(labels is not None)
    files, seeds, classes, rejected = [], [], [], 0
    pending: deque = deque()  # (futures of one batch, its size)
    workers = cfg.workers or devices.cpu_cores()
    with ThreadPoolExecutor(workers) as pool, progress_bar(len(plan), "exporting", unit="img") as bar:
        for images, batch_seeds, batch_labels, copies in _batches(G, plan, cfg.seed, cfg.batch_size, device, is_copy):
            rejected += copies
            grid.offer(images, batch_labels)
            batch_files = [_file_for(out, names, label, seed, cfg.format) for seed, label in zip(batch_seeds, batch_labels)]
            pixels, share = to_pixels(images), max(1, -(-len(batch_files) // workers))
            pending.append(([pool.submit(_encode_and_write, pixels[i : i + share], batch_files[i : i + share],
                                         cfg.format) for i in range(0, len(batch_files), share)], len(batch_files)))
            files += batch_files
            seeds += batch_seeds
            # A one-class unconditional model's images still carry their class.
            classes += [names[label] if label is not None else (names[0] if len(names) == 1 else "")
                        for label in batch_labels]
            while len(pending) > _BATCHES_AHEAD:
                _finish(pending.popleft(), bar)
        while pending:
            _finish(pending.popleft(), bar)
    if cfg.reject_copies:
        log(f"rejected {rejected} near-copies of training images (replaced by images from later seeds)")
    if len(files) < len(plan):
        log(f"warning: only {len(files)} of {len(plan)} images were written: after {MAX_TRIES} rounds the rest "
            f"were still near-copies of training images. The model memorises its data: evaluate an earlier "
            f"checkpoint (gan eval --nearest), or retrain with more augmentation.")

    manifest = out / "manifest.csv"
    rows = [[f.relative_to(out).as_posix(), seed, name, str(checkpoint.path), checkpoint.step]
            for f, seed, name in zip(files, seeds, classes)]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["file", "seed", "class", "checkpoint", "step"], *rows])
    write_text(manifest, buffer.getvalue())
    if grid_file and files:
        grid_file.parent.mkdir(parents=True, exist_ok=True)
        save_png(image_grid(grid.images()), grid_file)
    return ExportResult(out, files, manifest, grid_file if files else None, rejected)
