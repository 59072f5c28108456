"""`gan sample --near DIR`: variants anchored to each real image of DIR (gan.anchored), written in its class folder
with a manifest that names each one's source image and how closely the generator could draw that source."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch

from gan import device as devices
from gan.anchored import invert, variants
from gan.checkpoint import load_checkpoint, pick_checkpoint
from gan.command_config import SampleConfig, check_variants_total
from gan.data import load_dataset
from gan.errors import GanError
from gan.files import prepare_out
from gan.generate import load_generator
from gan.manifest import Manifest, check_folder_names
from gan.pixels import to_pixels
from gan.sample import ExportResult, encode_and_write, export_lock
from gan.stopping import StopSignals
from gan.tracking import progress_bar
from gan.variants import variant_names

COLUMNS = ["file", "source", "class", "distance", "seed", "checkpoint", "step"]


def export_near(cfg: SampleConfig, log: Callable[[str], None] = print):
    """cfg.per_image variants of every image under cfg.near, each filed under its source's class."""
    if cfg.grid:
        raise GanError("--grid: a --near export makes no preview grid; drop --grid and look at the images")
    if cfg.reject_copies:
        log("note: --near ignores --reject-copies and the label filter: its variants are near their sources by design, "
            "and take their labels")
    checkpoint = load_checkpoint(pick_checkpoint(cfg.run, cfg.checkpoint))
    trained = checkpoint.saved_config()
    if not Path(cfg.near).expanduser().is_dir():
        raise GanError(f"--near {cfg.near} is not a folder: give a folder of real images (class folders of the "
                       f"run's classes for a conditional run)")
    source = load_dataset(dataclasses.replace(trained.data, path=str(Path(cfg.near).expanduser()), cache=False), log)
    labels = _run_labels(source, trained.data.class_names, bool(trained.num_classes), cfg.near)
    planned = check_variants_total(cfg.per_image, len(source))
    stems = variant_names(Path(cfg.near), [Path(cfg.near) / f for f in source.files])
    check_folder_names(cfg.out, [stem.split("/")[0] for stem in stems if "/" in stem], "rename that class folder")
    device = devices.pick_device(cfg.device)
    G = load_generator(checkpoint, device)
    out = prepare_out(cfg.out, cfg.overwrite)
    lock = export_lock(out)
    try:
        manifest = Manifest(out, COLUMNS)
        if cfg.overwrite and (removed := manifest.remove_previous_export()):
            log(f"removed the {removed} images of the earlier export in {out} (other files stay)")
        log(f"inverting {len(source)} images of {cfg.near} into {checkpoint.path} (step {checkpoint.step}), then "
            f"drawing {cfg.per_image} variants near each into {out}")
        try:
            with StopSignals() as stop, progress_bar(planned, "near", "img") as bar:
                for start in range(0, len(source), cfg.batch_size):
                    if stop.requested:
                        break
                    rows = range(start, min(start + cfg.batch_size, len(source)))
                    batch_labels = None if labels is None else labels[start : rows.stop]
                    _write_near(G, source.images[start : rows.stop], batch_labels, rows, stems, source, cfg,
                                checkpoint, manifest, device)
                    bar.update(len(rows) * cfg.per_image)
        except OSError as error:
            raise manifest.failed(error, planned) from None
        if stop.requested:
            raise GanError(f"export stopped by a signal: {manifest.finish_early(planned)}. Run the same command with "
                           f"--overwrite to export them all")
        manifest.finish()
    finally:
        lock.release()
    return ExportResult(out, [out / row[0] for row in manifest.rows], manifest.path, None, planned=planned)


def _run_labels(source, class_names: list[str], conditional: bool, near: str) -> torch.Tensor | None:
    """Each source image's class as the run numbers it (None for an unconditional run)."""
    if not conditional:
        return None
    unknown = [name for name in source.class_names if name not in class_names]
    if unknown:
        raise GanError(f"--near {near} has folders the run was not trained on ({', '.join(unknown)}): a conditional "
                       f"run makes its own classes only ({', '.join(class_names)})")
    index = torch.tensor([class_names.index(name) for name in source.class_names])
    return index[source.labels]


def _write_near(G, images, labels, rows: range, stems: list[str], source, cfg: SampleConfig, checkpoint, manifest,
                device) -> None:
    z, distance = invert(G, images, labels, device)
    for k in range(cfg.per_image):
        seeds = [cfg.seed + i * cfg.per_image + k for i in rows]
        pixels = to_pixels(variants(G, z, labels, seeds, device))
        files = [manifest.out / f"{stems[i]}_near{k:02d}.{cfg.format}" for i in rows]
        manifest.will_write([f.relative_to(manifest.out).as_posix() for f in files])
        for file in files:
            file.parent.mkdir(parents=True, exist_ok=True)
        encode_and_write(pixels, files, cfg.format)
        manifest.rows += [[file.relative_to(manifest.out).as_posix(), source.files[i],
                           source.class_names[int(source.labels[i])], f"{float(distance[j]):.5f}", seeds[j],
                           str(checkpoint.path), checkpoint.step] for j, (i, file) in enumerate(zip(rows, files))]
