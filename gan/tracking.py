"""Where training reports go: one Tracker feeds TensorBoard, stats.jsonl and the progress bar (or plain log lines).

Stats are reported by name ("Loss/D", "D/real", ...) so a new statistic is one entry in a dict, nowhere else.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gan.files import atomic_write, write_text
from gan.pixels import to_uint8


GRID_SIZE = 64  # images in every sample grid: 8 rows of 8
GRID_ROWS = 16  # a conditional grid shows one row of 8 per class, for at most this many classes


def progress_bar(total: int, desc: str, unit: str = "it", initial: int = 0, iterable: Iterable | None = None) -> tqdm:
    """A tqdm bar on a terminal; silent when stderr is a file or pipe (callers log plain lines instead)."""
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, initial=initial,
        disable=not sys.stderr.isatty(), dynamic_ncols=True, leave=True,
    )


def image_grid(images: torch.Tensor, columns: int = 8, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> one (H', W', 3) uint8 picture, `columns` images a row (fewer when there
    are fewer images), on black with `padding` pixels around each. Written here rather than taken from
    torchvision.utils.make_grid: importing torchvision would delay every command's first step by a second."""
    pixels = to_uint8(images.detach().float().cpu())
    count, _, height, width = pixels.shape
    columns = min(columns, count)
    rows = -(-count // columns)
    grid = torch.zeros(rows * (height + padding) + padding, columns * (width + padding) + padding, 3, dtype=torch.uint8)
    for i, image in enumerate(pixels.permute(0, 2, 3, 1)):  # one channel broadcasts to three
        top, left = (i // columns) * (height + padding) + padding, (i % columns) * (width + padding) + padding
        grid[top : top + height, left : left + width] = image
    return grid.numpy()


def save_png(array: np.ndarray, path: Path) -> None:
    """Write an (H, W, 3) or (H, W) uint8 array as PNG, atomically."""
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def _open_tensorboard(run_dir: Path, purge_step: int | None, log: Callable[[str], None]):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log("TensorBoard is not installed: stats go to stats.jsonl only (pip install tensorboard to see curves)")
        return None
    return SummaryWriter(log_dir=str(run_dir), purge_step=purge_step, flush_secs=10)


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _parse(line: str) -> dict | None:
    """One stats.jsonl record; None for a line a crash cut short."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


class Tracker:
    """Reports a run's stats and pictures; on resume it continues the curves from `start_step`."""

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        start_step: int,
        batch_size: int,
        tensorboard: bool = True,
        log: Callable[[str], None] = print,
    ):
        self.run_dir = Path(run_dir)
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.log = log
        self.stats_path = self.run_dir / "stats.jsonl"
        self._drop_stats_after(start_step)
        # purge_step hides events a crashed run wrote after its last checkpoint, so curves do not fold back.
        self.writer = _open_tensorboard(self.run_dir, start_step + 1 if start_step else None, log) if tensorboard else None
        self.bar = progress_bar(total_steps, self.run_dir.name, unit="step", initial=start_step)
        self.last_step, self.last_time = start_step, time.perf_counter()

    def _drop_stats_after(self, step: int) -> None:
        """On resume, forget stats.jsonl lines past the checkpoint: they will be written again."""
        if not self.stats_path.exists():
            return
        lines = self.stats_path.read_text().splitlines()
        kept = [line for line in lines if (record := _parse(line)) and record.get("step", step + 1) <= step]
        if len(kept) != len(lines):
            write_text(self.stats_path, "".join(line + "\n" for line in kept))

    def restart_clock(self) -> None:
        """Measure speed from now: the first window should not include start-up work (grids, compilation)."""
        self.last_time = time.perf_counter()

    def scalars(self, step: int, stats: dict[str, float]) -> None:
        """Report named stats for `step`; adds Speed/img_per_s measured since the previous call."""
        now = time.perf_counter()
        steps_per_s = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        stats = {**stats, "Speed/img_per_s": steps_per_s * self.batch_size}
        self._write(step, stats)
        self._show(step, stats, steps_per_s)

    def metrics(self, step: int, values: dict[str, float], note: str = "", details: dict[str, float] | None = None) -> None:
        """Report an evaluation's numbers (no speed: they are not per-step stats), with a line for the user;
        `details` (e.g. per-class figures) are recorded but not shown."""
        self._write(step, {**values, **(details or {})})
        shown = "  ".join(f"{name.split('/')[-1]} {value:.4g}" for name, value in values.items())
        self.message(f"step {step}: {shown}{note}")

    def _write(self, step: int, stats: dict[str, float]) -> None:
        if self.writer:
            for name, value in stats.items():
                self.writer.add_scalar(name, value, step)
        with self.stats_path.open("a") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **stats}) + "\n")

    def _show(self, step: int, stats: dict[str, float], steps_per_s: float) -> None:
        summary = (
            f"Loss/D {stats['Loss/D']:.3f}  Loss/G {stats['Loss/G']:.3f}  "
            f"D(x) {stats['D/real']:.2f}  D(G(z)) {stats['D/fake']:.2f}  {stats['Speed/img_per_s']:.0f} img/s"
        )
        if not self.bar.disable:
            self.bar.set_postfix_str(summary, refresh=False)
            self.bar.update(step - self.bar.n)
            return
        eta = (self.total_steps - step) / max(steps_per_s, 1e-9)
        self.log(f"step {step}/{self.total_steps}  {summary}  ETA {_format_duration(eta)}")

    def images(self, name: str, images: torch.Tensor, step: int, filename: str) -> Path:
        """Save a grid of `images` (floats in [-1, 1]) as `filename` in the run folder and in TensorBoard."""
        grid = image_grid(images)
        path = self.run_dir / filename
        save_png(grid, path)
        if self.writer:
            self.writer.add_image(name, grid, step, dataformats="HWC")
        return path

    def message(self, text: str) -> None:
        """A line for the user that does not break the progress bar."""
        if self.bar.disable:
            self.log(text)
        else:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        if self.writer:
            self.writer.close()
