"""Export: synthetic images from a trained generator, one seed per image, encoded and written in parallel, atomically.

Image i uses noise drawn from its own generator seeded S+i on the CPU, so an export does not depend on the batch
size or the device, and any single image can be regenerated from its seed.
"""

from __future__ import annotations

import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from gan import device as devices
from gan.checkpoint import Checkpoint, load_checkpoint, pick_checkpoint
from gan.command_config import MAX_EXPORT, SampleConfig
from gan.config import RunConfig
from gan.errors import GanError
from gan.copies import copy_filter
from gan.data import training_images
from gan.features import load_feature_space
from gan.files import FolderLock, atomic_write, prepare_out
from gan.generate import d_scores, generate, load_discriminator, load_generator, spread
from gan.judge import JUDGE, run_judge
from gan.manifest import Manifest, check_folder_names
from gan.pixels import to_pixels, to_uint8
from gan.stopping import StopSignals
from gan.tracking import GRID_ROWS, GRID_SIZE, image_grid, progress_bar, save_png

MANIFEST_COLUMNS = ["file", "seed", "class", "checkpoint", "step", "truncation", "confidence", "d_score"]
_PIL_FORMATS = {"png": ("PNG", {}), "jpg": ("JPEG", {"quality": 95})}
_BATCHES_AHEAD = 2  # encoded while the next batches are generated; also bounds the memory in flight
MAX_TRIES = 10  # with a screen (--label-filter, --reject-copies), rounds of making rejected images again
HOPELESS = 0.5  # a class whose samples the label filter rejects this often: the generator cannot really make it


@dataclass
class ExportResult:
    out: Path
    files: list[Path]
    manifest: Path
    grid: Path | None
    rejected: int = 0  # samples the screen turned down (near-copies, wrong class)
    rejected_by_class: dict[str, dict[str, int]] = field(default_factory=dict)  # class -> {"label": n, "copy": n}
    made_by_class: dict[str, int] = field(default_factory=dict)  # samples generated per class, rejected ones included
    planned: int = 0  # images asked for (more than `files` when the checks turned some down to the end)


@dataclass
class Screened:
    """What the screen says of one batch: which samples stay, and why the others go ("copy", "label")."""

    keep: list[bool]
    reasons: list[str]
    confidence: list[float | None]  # the judge's probability of the intended class (None: no judge)


Screen = Callable[[torch.Tensor, list], Screened]


def plan_classes(cfg: SampleConfig, trained: RunConfig, source: Path) -> list[int] | None:
    """The class index of each image to export, or None for an unconditional model."""
    names = trained.data.class_names
    if not trained.num_classes:
        if cfg.classes or cfg.per_class or cfg.per_real:
            flag = "--class" if cfg.classes else "--per-class" if cfg.per_class else "--per-real"
            raise GanError(f"{flag}: {source} is an unconditional model, which cannot make a chosen class; "
                           f"use --count (train with class folders and --conditional on for labelled images)")
        return None
    unknown = [name for name in cfg.classes if name not in names]
    if unknown:
        raise GanError(f"unknown class {', '.join(map(repr, unknown))}: {source} knows {', '.join(names)}")
    chosen = [names.index(name) for name in dict.fromkeys(cfg.classes)] or list(range(len(names)))
    trained_counts = [trained.data.class_counts[c] for c in chosen]
    if cfg.per_class:
        counts = [cfg.per_class] * len(chosen)
    elif cfg.per_real:  # as gan value mixes them in: R per training image of the class (at least 1)
        counts = [max(1, round(cfg.per_real * n)) for n in trained_counts]
    else:  # like the training data: small classes stay small unless --per-class asks otherwise
        counts = spread(cfg.count, trained_counts)
    if sum(counts) > MAX_EXPORT:
        flag = f"--per-class {cfg.per_class}" if cfg.per_class else f"--per-real {cfg.per_real:g}"
        raise GanError(f"{flag} asks for {sum(counts):,} images of {len(chosen)} classes, more than the {MAX_EXPORT:,} "
                       f"one export makes: lower it, or export the classes in parts with --class")
    return [c for c, n in zip(chosen, counts) for _ in range(n)]


def encode_and_write(pixels: np.ndarray, files: list[Path], fmt: str) -> None:
    """A worker thread's share of a batch: one task per thread and batch, since a task per image cost about as
    much as encoding the image."""
    name, options = _PIL_FORMATS[fmt]
    for image, file in zip(pixels, files):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=name, **options)
        atomic_write(file, lambda tmp: tmp.write_bytes(buffer.getvalue()))


class _GridPicker:
    """Keeps the preview grid's images as they stream past: the first 64, or the first row of 8 of each class."""

    def __init__(self, conditional: bool):
        self.limit = 8 if conditional else GRID_SIZE
        self.kept: dict[int | None, list[torch.Tensor]] = {}

    def offer(self, images: torch.Tensor, labels: list[int | None]) -> None:
        for image, key in zip(images, labels):
            row = self.kept.get(key)
            if row is None and len(self.kept) < GRID_ROWS:
                row = self.kept[key] = []
            if row is not None and len(row) < self.limit:
                row.append(image)

    def images(self) -> torch.Tensor:
        return torch.stack([image for row in self.kept.values() for image in row])


def _batches(G: nn.Module, plan: list[int | None], first_seed: int, batch_size: int, truncation: float,
             device: torch.device, screen: Screen | None) -> Iterator[tuple[torch.Tensor, list, list, list, list]]:
    """(images, seeds, labels, confidences, rejected (label, reason) pairs) batches for the classes in `plan`
    (None: unconditional); image i of the plan uses seed first_seed + i. With a `screen`, the rejected images
    are made again, in plan order, from the seeds after the plan, for at most MAX_TRIES rounds; which seed makes
    which image never depends on batch_size."""
    todo, seed = list(range(len(plan))), first_seed
    for _ in range(MAX_TRIES if screen else 1):
        rejected = []
        for start in range(0, len(todo), batch_size):
            positions = todo[start : start + batch_size]
            seeds = list(range(seed + start, seed + start + len(positions)))
            labels = [plan[i] for i in positions]
            images = next(generate(G, seeds, None if labels[0] is None else labels, len(seeds), device,
                                   truncation=truncation))
            verdict = screen(images, labels) if screen else Screened([True] * len(seeds), [""] * len(seeds),
                                                                     [None] * len(seeds))
            rejected += [i for i, keep in zip(positions, verdict.keep) if not keep]
            kept = [j for j, keep in enumerate(verdict.keep) if keep]
            yield (images[kept], [seeds[j] for j in kept], [labels[j] for j in kept],
                   [verdict.confidence[j] for j in kept],
                   [(labels[j], verdict.reasons[j]) for j, keep in enumerate(verdict.keep) if not keep])
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


def _class_name(names: list[str], label: int | None) -> str:
    """The class an image is filed under; a one-class unconditional model's images still carry their class."""
    if label is not None:
        return names[label]
    return names[0] if len(names) == 1 else ""


def _screen(cfg: SampleConfig, checkpoint: Checkpoint, trained: RunConfig, device: torch.device, log) -> Screen | None:
    """The checks every sample must pass before it is written: not a near-copy (--reject-copies), and for a
    conditional run the judge's class, with at least --min-confidence (--label-filter)."""
    is_copy = judge = None
    if cfg.reject_copies:  # in the run's feature space, against its training images
        space = load_feature_space(trained.metrics, device, log)
        is_copy = copy_filter(space, training_images(trained, "--reject-copies", log), device, cfg.batch_size)
    kept = (checkpoint.path.parent / JUDGE).is_file()  # then its confidence goes into the manifest even unfiltered
    if trained.num_classes and (cfg.label_filter or kept):
        judge = run_judge(checkpoint.path.parent, trained,
                          lambda: training_images(trained, "the label filter (--no-label-filter: off)", log),
                          device, log)
    if not (is_copy or judge):
        return None

    def screen(images: torch.Tensor, labels: list) -> Screened:
        n = len(images)
        copies = is_copy(images).tolist() if is_copy else [False] * n
        confidence: list = [None] * n
        wrong = [False] * n
        if judge:
            probabilities = judge.probabilities(to_uint8(images), device)
            intended = torch.tensor(labels)
            confidence = probabilities[torch.arange(n), intended].tolist()
            if cfg.label_filter:
                wrong = ((probabilities.argmax(1) != intended) | (probabilities[torch.arange(n), intended] <
                                                                  cfg.min_confidence)).tolist()
        reasons = ["copy" if c else "label" if w else "" for c, w in zip(copies, wrong)]
        return Screened([not r for r in reasons], reasons, confidence)

    return screen


def _report_rejections(result: ExportResult, cfg: SampleConfig, planned: int, log) -> None:
    """How many samples each check turned down, per class, and a plain warning for a class the generator cannot
    really make."""
    if cfg.reject_copies:
        copies = sum(r.get("copy", 0) for r in result.rejected_by_class.values())
        log(f"rejected {copies} near-copies of training images (replaced by images from later seeds)")
    labelled = {name: r["label"] for name, r in result.rejected_by_class.items() if r.get("label")}
    if cfg.label_filter and result.made_by_class:
        shown = ", ".join(f"{name} {n} of {result.made_by_class[name]}" for name, n in labelled.items()) or "none"
        log(f"label filter: rejected samples the judge did not put in their class with confidence "
            f"{cfg.min_confidence:g} or more (made again from later seeds): {shown}")
        for name, n in labelled.items():
            if n / result.made_by_class[name] > HOPELESS:
                log(f"warning: class {name}: {100 * n / result.made_by_class[name]:.0f}% of its samples were not "
                    f"recognised as {name}: the generator cannot really make this class. Train longer, give it more "
                    f"{name} images, or export without it (--class)")
    if len(result.files) < planned:
        log(f"warning: only {len(result.files)} of {planned} images were written: after {MAX_TRIES} rounds the rest "
            f"were still rejected. Evaluate the run (gan eval --nearest), train longer or with more augmentation, "
            f"or turn the checks off (--no-label-filter, no --reject-copies)")


def _write_batches(batches: Iterator, planned: int, cfg: SampleConfig, D: nn.Module, device: torch.device,
                   checkpoint: Checkpoint, manifest: Manifest, grid: _GridPicker, result: ExportResult,
                   stop: StopSignals) -> None:
    """Encode and write each batch in worker threads while the next ones are made, naming every file in the
    manifest before it is written; stops between batches when a signal asks."""
    names = checkpoint.saved_config().data.class_names
    pending: deque = deque()  # (futures of one batch, its size)
    workers = cfg.workers or devices.cpu_cores()
    with ThreadPoolExecutor(workers) as pool, progress_bar(planned, "exporting", unit="img") as bar:
        for images, batch_seeds, batch_labels, confidences, rejected in batches:
            if stop.requested:
                break
            for label in batch_labels + [label for label, _ in rejected]:
                if label is not None:
                    result.made_by_class[names[label]] = result.made_by_class.get(names[label], 0) + 1
            for label, reason in rejected:
                counts = result.rejected_by_class.setdefault(_class_name(names, label), {})
                counts[reason] = counts.get(reason, 0) + 1
            result.rejected += len(rejected)
            if not len(images):
                continue
            grid.offer(images, batch_labels)
            files = [_file_for(manifest.out, names, label, seed, cfg.format)
                     for seed, label in zip(batch_seeds, batch_labels)]
            scores = d_scores(D, images, None if batch_labels[0] is None else batch_labels, device)
            manifest.will_write([f.relative_to(manifest.out).as_posix() for f in files])
            manifest.rows += [
                [f.relative_to(manifest.out).as_posix(), seed, _class_name(names, label), str(checkpoint.path),
                 checkpoint.step, f"{cfg.truncation:g}", "" if confidence is None else f"{confidence:.4f}",
                 f"{score:.4f}"]
                for f, seed, label, confidence, score in zip(files, batch_seeds, batch_labels, confidences, scores)]
            pixels, share = to_pixels(images), max(1, -(-len(files) // workers))
            pending.append(([pool.submit(encode_and_write, pixels[i : i + share], files[i : i + share], cfg.format)
                             for i in range(0, len(files), share)], len(files)))
            while len(pending) > _BATCHES_AHEAD:
                _finish(pending.popleft(), bar)
        while pending:
            _finish(pending.popleft(), bar)


def _grid_file(cfg: SampleConfig) -> Path | None:
    """--grid, refused where it would replace a file unasked or land among the exported training images."""
    if not cfg.grid:
        return None
    grid, out = Path(cfg.grid).expanduser(), Path(cfg.out).expanduser()
    if grid.is_dir():
        raise GanError(f"--grid {grid} is a folder; give a file name such as {grid / 'preview.png'}")
    if out.resolve() in grid.resolve().parents:
        raise GanError(f"--grid {grid} is inside --out {out}, where it would become a training image; put it beside, "
                       f"e.g. --grid {out.parent / (out.name + '-grid.png')}")
    if grid.exists() and not cfg.overwrite:
        raise GanError(f"--grid {grid} already exists; give another file name, or pass --overwrite to replace it")
    return grid


def export(cfg: SampleConfig, log: Callable[[str], None] = print) -> ExportResult:
    """Generate images from a run or checkpoint into cfg.out (one folder per class for a conditional model),
    with manifest.csv and an optional preview grid."""
    cfg.validate()
    if cfg.near:
        from gan.near import export_near  # it writes through this module's encoder

        return export_near(cfg, log)
    checkpoint = load_checkpoint(pick_checkpoint(cfg.run, cfg.checkpoint))
    trained = checkpoint.saved_config()
    labels = plan_classes(cfg, trained, checkpoint.path)
    device = devices.pick_device(cfg.device)
    G = load_generator(checkpoint, device)
    grid_file = _grid_file(cfg)
    screen = _screen(cfg, checkpoint, trained, device, log)
    D = load_discriminator(checkpoint, device)
    names = trained.data.class_names
    if labels is not None:
        check_folder_names(cfg.out, [names[c] for c in dict.fromkeys(labels)], "export the other classes with --class")
    out = prepare_out(cfg.out, cfg.overwrite)
    lock = export_lock(out)
    try:
        return _export_into(out, cfg, checkpoint, labels, G, D, screen, grid_file, device, log)
    finally:
        lock.release()


def export_lock(out: Path) -> FolderLock:
    """The one export writing `out` (see gan.files.FolderLock): nothing is added to the folder."""
    return FolderLock(out, "exported into", "two exports would mix their images and manifests, and one's "
                      "--overwrite would delete the other's. Wait for it to finish, or choose another --out",
                      pid_file=False)


def _export_into(out: Path, cfg: SampleConfig, checkpoint, labels, G, D, screen, grid_file, device,
                 log) -> ExportResult:
    """export's work, done while this process holds `out`: the images, their manifest, the report and the grid."""
    manifest = Manifest(out, MANIFEST_COLUMNS)
    if cfg.overwrite and (removed := manifest.remove_previous_export()):
        log(f"removed the {removed} images of the earlier export in {out} (other files stay)")
    plan = labels if labels is not None else [None] * cfg.count
    log(f"exporting {len(plan)} images from {checkpoint.path} (step {checkpoint.step}) to {out}")

    grid = _GridPicker(labels is not None)
    result = ExportResult(out, [], manifest.path, None, planned=len(plan))
    try:
        with StopSignals() as stop:
            batches = _batches(G, plan, cfg.seed, cfg.batch_size, cfg.truncation, device, screen)
            _write_batches(batches, len(plan), cfg, D, device, checkpoint, manifest, grid, result, stop)
    except OSError as error:
        raise manifest.failed(error, len(plan)) from None
    except KeyboardInterrupt:  # the second Ctrl-C: the files written so far still get their manifest
        manifest.finish_early(len(plan))
        raise
    if stop.requested:
        raise GanError(f"export stopped by a signal: {manifest.finish_early(len(plan))}. Run the same command with "
                       f"--overwrite to export them all")
    manifest.finish()
    result.files = [out / row[0] for row in manifest.rows]
    _report_rejections(result, cfg, len(plan), log)

    if grid_file and result.files:
        grid_file.parent.mkdir(parents=True, exist_ok=True)
        save_png(image_grid(grid.images()), grid_file)
        result.grid = grid_file
    return result
