import json
import sys

import numpy as np
import torch
from PIL import Image

from gan.tracking import Tracker, image_grid

STATS = {"Loss/D": 1.0, "Loss/G": 2.0, "D/real": 0.6, "D/fake": 0.4}


def test_grid_layout_and_range():
    images = torch.stack([torch.full((3, 4, 4), v) for v in (-1.0, 1.0)] * 5)  # 10 images
    grid = image_grid(images, columns=8)
    assert grid.dtype == np.uint8 and grid.shape == (2 + 2 * 6, 2 + 8 * 6, 3)  # 2 rows of 8 columns, 2-px padding
    assert grid[2, 2].tolist() == [0, 0, 0] and grid[2, 8].tolist() == [255, 255, 255]


def test_plain_lines_and_jsonl_without_tensorboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    lines = []
    tracker = Tracker(tmp_path, total_steps=10, start_step=0, batch_size=4, log=lines.append)
    assert tracker.writer is None and "TensorBoard is not installed" in lines[0]
    tracker.scalars(5, STATS)
    tracker.images("Samples/x", torch.zeros(3, 1, 8, 8), 5, "grid.png")
    tracker.close()
    record = json.loads((tmp_path / "stats.jsonl").read_text())
    assert record["step"] == 5 and record["Loss/G"] == 2.0 and record["Speed/img_per_s"] > 0
    assert lines[-1].startswith("step 5/10  Loss/D 1.000  Loss/G 2.000") and "img/s  ETA" in lines[-1]
    assert Image.open(tmp_path / "grid.png").size == (2 + 3 * 10, 2 + 10)


def test_resume_forgets_stats_written_after_the_checkpoint(tmp_path):
    tracker = Tracker(tmp_path, 10, 0, 4, tensorboard=False, log=lambda _: None)
    for step in (2, 4, 6):
        tracker.scalars(step, STATS)
    tracker.close()
    Tracker(tmp_path, 10, 4, 4, tensorboard=False, log=lambda _: None).close()
    steps = [json.loads(line)["step"] for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_a_stats_line_cut_short_by_a_crash_is_dropped_on_resume(tmp_path):
    (tmp_path / "stats.jsonl").write_text('{"step": 2, "Loss/D": 1.0}\n{"step": 4, "ti')
    Tracker(tmp_path, 10, 4, 4, tensorboard=False, log=lambda _: None).close()
    assert (tmp_path / "stats.jsonl").read_text() == '{"step": 2, "Loss/D": 1.0}\n'
