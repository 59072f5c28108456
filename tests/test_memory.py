"""The memory estimate made before a run starts, and out-of-memory errors told in the user's terms."""

from __future__ import annotations

import errno

import pytest
import torch

import gan.train as train_module
from helpers import TINY_FLAGS, write_images
from gan.cli import main
from gan.config import RunConfig
from gan.memory import training_bytes
from gan.tracking import Tracker


def test_the_estimate_grows_with_the_batch_the_resolution_and_the_width():
    cfg = RunConfig()
    base = training_bytes(cfg, 16)
    assert training_bytes(cfg, 32) > base
    cfg.data.resolution = 128
    assert training_bytes(cfg, 16) > base
    cfg.data.resolution, cfg.model.g_channels = 64, 128
    assert training_bytes(cfg, 16) > base


def test_the_estimate_does_not_touch_the_random_state():
    state = torch.random.get_rng_state()
    training_bytes(RunConfig(), 4)
    assert torch.equal(state, torch.random.get_rng_state())


def test_a_run_too_large_for_the_memory_is_refused_before_any_work(tmp_path, capsys):
    write_images(tmp_path / "data", 4)
    code = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "runs"), *TINY_FLAGS,
                 "--resolution", "4096", "--batch-size", "1024"])
    error = capsys.readouterr().err
    assert code == 1 and error.startswith("error: this run needs at least about ")
    assert error.rstrip().endswith("is free: lower --batch-size (now 1024), --resolution (now 4096), --g-channels / "
                                   "--d-channels (now 8 / 8) or --z-dim (now 8)")
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing decoded, no run folder


@pytest.mark.parametrize("wide", [["--g-channels", "8192"], ["--d-channels", "8192"], ["--z-dim", "8192",
                                                                                       "--g-channels", "8192"]])
def test_networks_too_wide_for_the_memory_are_refused_before_any_work(tmp_path, capsys, wide):
    write_images(tmp_path / "data", 4)
    code = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "runs"), *TINY_FLAGS,
                 "--resolution", "256", *wide])
    error = capsys.readouterr().err
    assert code == 1 and error.startswith("error: this run needs at least about ") and "8192" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("raised", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 34359738368 bytes. Error code 12 (Cannot allocate memory)"),
])
def test_running_out_of_memory_mid_run_says_what_to_lower_and_keeps_the_checkpoints(flat_folder, tmp_path,
                                                                                   monkeypatch, capsys, raised):
    real_step = train_module.train_step

    def step_until_memory_runs_out(state, cfg, amp, step):
        if step == 3:
            raise raised
        return real_step(state, cfg, amp, step)

    monkeypatch.setattr(train_module, "train_step", step_until_memory_runs_out)
    code = main(["train", "--data", str(flat_folder), "--out", str(tmp_path / "runs"), *TINY_FLAGS, "--steps", "4"])
    error = capsys.readouterr().err
    assert code == 1 and error.startswith(f"error: out of memory on cpu ({type(raised).__name__}: ")
    assert error.rstrip().endswith("lower --batch-size (now 8), --resolution (now 16), --g-channels / --d-channels "
                                   "(now 8 / 8) or --z-dim (now 8). Checkpoints saved so far are kept")
    assert (tmp_path / "runs" / "00000-flat" / "checkpoint-0000002.pt").is_file()


def test_a_full_disk_mid_run_names_the_file_and_the_checkpoint_to_resume(flat_folder, tmp_path, monkeypatch, capsys):
    real_images = Tracker.images

    def grid_on_a_full_disk(tracker, tag, images, step, file):
        if step == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(tracker.run_dir / file))
        return real_images(tracker, tag, images, step, file)

    monkeypatch.setattr(Tracker, "images", grid_on_a_full_disk)
    run = tmp_path / "runs" / "00000-flat"
    code = main(["train", "--data", str(flat_folder), "--out", str(tmp_path / "runs"), *TINY_FLAGS, "--steps", "4"])
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith(f"error: cannot write {run / 'fakes-0000004.png'} (the disk is full; ")
    assert error.rstrip().endswith(f"free there): the newest complete checkpoint is checkpoint-0000002.pt. Free some "
                                   f"space, then continue with: gan train --resume {run}")
