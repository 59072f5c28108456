"""Helpers the tests share: tiny image folders, tiny configs, states and flags, and a disk that fills up."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from gan.config import DataConfig, RunConfig
from gan.data import ImageDataset, load_dataset
from gan.images import decode


def write_images(folder: Path, count: int, size: tuple[int, int] = (24, 20), mode: str = "RGB", seed: int = 0,
                 suffix: str = ".png") -> list[Path]:
    """Write `count` images with a few coloured blocks each (not pure noise, so they compress and resize sanely)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = np.full((size[1], size[0], 3), rng.integers(0, 256, 3), dtype=np.uint8)
        x, y = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
        pixels[y : y + size[1] // 2, x : x + size[0] // 2] = rng.integers(0, 256, 3)
        path = folder / f"img{i:03d}{suffix}"
        Image.fromarray(pixels).convert(mode).save(path)
        paths.append(path)
    return paths


def fill_the_disk_after(count: int, module, monkeypatch, code: int = errno.ENOSPC) -> list[Path]:
    """`module`'s atomic writes succeed `count` times, then fail as on a full disk (or, with `code` EROFS, as in a
    read-only folder: the tests may run as root, whom permissions do not stop); returns the files written."""
    from gan.files import atomic_write

    written: list[Path] = []

    def write_until_full(path, write, durable=False):
        if len(written) == count:
            raise OSError(code, os.strerror(code), str(path))
        atomic_write(path, write, durable)
        written.append(Path(path))

    monkeypatch.setattr(module, "atomic_write", write_until_full)
    return written


def tiny_config(data: Path, out: Path, steps: int = 4) -> RunConfig:
    """A run that trains in well under a second: 16 px, narrow networks, small batches."""
    cfg = RunConfig()
    cfg.data.path = str(data)
    cfg.data.resolution = 16
    cfg.data.workers = 1
    cfg.model.z_dim = 8
    cfg.model.g_channels = 8
    cfg.model.d_channels = 8
    t = cfg.train
    t.steps, t.batch_size, t.out = steps, 8, str(out)
    t.log_every = t.image_every = t.checkpoint_every = 2
    t.device = "cpu"
    t.tensorboard = False
    t.eval_count = 16  # evaluations (at the last step) stay quick, in the feature space that needs no download
    cfg.metrics.features = "random"
    return cfg


def tiny_state(cfg: RunConfig, ranks=None):
    """The training state of `cfg` on the CPU, built as gan train builds it (the data decoded and recorded)."""
    import torch

    from gan.data import load_dataset
    from gan.distributed import SINGLE
    from gan.state import build_state
    from gan.train import record_dataset

    dataset = load_dataset(cfg.data, lambda _: None)
    record_dataset(cfg, dataset, None, lambda _: None)
    return build_state(cfg, dataset, torch.device("cpu"), ranks or SINGLE)


def stats_records(run_dir: Path, key: str = "Loss/D") -> list[dict]:
    """The stats.jsonl records that hold `key`: the training stats by default (evaluations are records too)."""
    records = [json.loads(line) for line in (Path(run_dir) / "stats.jsonl").read_text().splitlines()]
    return [record for record in records if key in record]


TINY_FLAGS = [
    "--resolution", "16", "--workers", "1", "--z-dim", "8", "--g-channels", "8", "--d-channels", "8",
    "--batch-size", "8", "--log-every", "2", "--image-every", "2", "--checkpoint-every", "2", "--device", "cpu",
    "--eval-count", "16", "--features", "random",
]


# --- image folders for the data tests -------------------------------------------------------------------------------

RES = 16
BIG = 80_000_000  # DataConfig's default --max-pixels
RED, BLUE = (255, 0, 0), (0, 0, 255)


def data_config(path: Path, tmp_path: Path, **overrides) -> DataConfig:
    """16 px, one worker, no cache unless a test asks for it; any cache lives in tmp_path."""
    cfg = DataConfig(path=str(path), resolution=RES, workers=1, cache=False, cache_dir=str(tmp_path / "cache"))
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


def load_folder(cfg: DataConfig) -> tuple[ImageDataset, list[str]]:
    lines: list[str] = []
    dataset = load_dataset(cfg, log=lines.append)
    return dataset, lines


def decoded(path: Path, background: str = "white", max_pixels: int = BIG, resolution: int = RES):
    """(pixels, gray, upscaled) for one file."""
    return decode(str(path), resolution, background, max_pixels)


def solid(path: Path, colour, size=(20, 20), mode: str = "RGB", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)
    return path


def noise_png(path: Path, size: int = 32, seed: int = 0) -> Path:
    """A PNG of random pixels: it barely compresses, so cutting it in half cuts the pixel data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def truncated_png(path: Path) -> Path:
    data = noise_png(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


COLOURS = {"red": (200, 40, 40), "blue": (40, 40, 200)}


def coloured(folder, count, seed, swapped=False):
    """Class folders a classifier can learn: mostly red images and mostly blue ones, with noise (`swapped`: the
    red folder holds the blue images and the other way round)."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        if swapped:
            colour = COLOURS["blue" if name == "red" else "red"]
        for i in range(count):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{seed}-{i}.png")
    return folder
