import errno
import os
import shutil
from types import SimpleNamespace

import pytest
import torch

from gan.checkpoint import RunLock, list_checkpoints, load_checkpoint, new_run_dir, newest_run, save_checkpoint
from gan.errors import GanError
from gan.files import human_size


def test_run_dirs_count_past_the_highest_number(tmp_path):
    (tmp_path / "00007-old").mkdir()
    (tmp_path / "notes").mkdir()
    assert new_run_dir(str(tmp_path), "photos").name == "00008-photos"
    assert new_run_dir(str(tmp_path), "a/b c").name == "00009-a-b-c"


def test_save_is_atomic_ordered_by_step_and_pruned(tmp_path):
    for step in (9, 10, 100):
        save_checkpoint(tmp_path, {"step": step, "w": torch.ones(2) * step}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-0000010.pt", "checkpoint-0000100.pt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    checkpoint = load_checkpoint(str(tmp_path))  # a run folder means its newest checkpoint
    assert checkpoint.step == 100 and torch.equal(checkpoint.state["w"], torch.full((2,), 100.0))


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_save(obj, file):
        file.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(GanError) as error:
        save_checkpoint(tmp_path, {"step": 1}, keep=3)
    free = human_size(shutil.disk_usage(tmp_path).free)
    assert str(error.value) == (f"cannot write {tmp_path / 'checkpoint-0000001.pt'} (the disk is full; {free} free "
                                f"there): no checkpoint was saved yet. Free some space, then run the same command again")
    assert list(tmp_path.iterdir()) == []


def test_torchs_full_disk_error_names_the_disk_and_the_checkpoint_to_resume(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"step": 1}, keep=3)

    def full_disk(obj, path):  # what torch's zip writer raises when the disk fills
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=4096))
    with pytest.raises(GanError) as error:
        save_checkpoint(tmp_path, {"step": 2, "G": {"weight": torch.zeros(2**20)}}, keep=3)
    assert str(error.value) == (f"cannot write {tmp_path / 'checkpoint-0000002.pt'} (the disk is full; 0 MiB free "
                                f"there): the newest complete checkpoint is checkpoint-0000001.pt. Free some space "
                                f"(a checkpoint takes about 4 MiB), then continue with: gan train --resume {tmp_path}")
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-0000001.pt"]


@pytest.mark.parametrize("damage", [lambda data: data[: len(data) // 2], lambda data: b"hello"])  # truncated, other
def test_a_damaged_newest_checkpoint_points_to_the_older_one_that_reads(tmp_path, damage):
    for step in (500, 1000):
        save_checkpoint(tmp_path, {"step": step}, keep=3)
    newest = tmp_path / "checkpoint-0001000.pt"
    newest.write_bytes(damage(newest.read_bytes()))
    with pytest.raises(GanError) as error:
        load_checkpoint(str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"cannot read checkpoint {newest}: it is damaged, incomplete or not written by "
                              f"`gan train` (")
    assert message.endswith(f"). checkpoint-0000500.pt in the same folder reads: use it instead "
                            f"(gan train --resume {tmp_path / 'checkpoint-0000500.pt'})")
    assert "\n" not in message


def test_loading_refuses_what_is_not_our_checkpoint(tmp_path):
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(GanError, match="other.pt is not a checkpoint written by `gan train`"):
        load_checkpoint(str(tmp_path / "other.pt"))
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a torch file")
    with pytest.raises(GanError, match="cannot read checkpoint .*garbage.pt"):
        load_checkpoint(str(tmp_path / "garbage.pt"))
    with pytest.raises(GanError, match="does not exist"):
        load_checkpoint(str(tmp_path / "missing"))
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(GanError, match="holds no checkpoint"):
        load_checkpoint(str(tmp_path / "empty-run"))


class Arbitrary:
    """Stands for any pickled object (a whole nn.Module, a malicious payload)."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"format": "gan-checkpoint", "version": 1, "x": Arbitrary()}, tmp_path / "evil.pt")
    with pytest.raises(GanError, match="cannot read checkpoint"):
        load_checkpoint(str(tmp_path / "evil.pt"))  # weights_only=True never unpickles arbitrary objects


def test_checkpoints_of_another_format_version_are_refused_clearly(tmp_path):
    torch.save({"format": "gan-checkpoint", "version": 1, "step": 3}, tmp_path / "checkpoint-0000003.pt")
    with pytest.raises(GanError, match="format version 1, from another version of gan; this one reads versions 2, 3, 4"):
        load_checkpoint(str(tmp_path))


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_checkpoint_loads_and_resumes_as_the_run_it_was(tmp_path, class_folder, version):
    """Version 2 knew neither conditional BatchNorm nor the class term: its runs load with concat and no term.
    Versions 2 and 3 knew neither R2, LeCam nor transfer: their runs resume without them."""
    from helpers import tiny_config
    from gan.generate import load_generator
    from gan.train import train

    cfg = tiny_config(class_folder, tmp_path / "runs", steps=2)
    cfg.model.g_conditioning, cfg.train.eval_every, cfg.train.class_weight = "concat", 0, 0.0  # as they trained
    run_dir = train(cfg, log=lambda _: None).run_dir
    file = run_dir / "checkpoint-0000002.pt"
    state = torch.load(file, weights_only=True)
    state["version"] = version
    if version == 2:
        del state["config"]["model"]["g_conditioning"], state["config"]["train"]["class_weight"]
    for name in ("r2_gamma", "gamma_final", "gamma_decay_steps", "lecam_weight", "init_from", "freeze_d"):
        del state["config"]["train"][name]
    del state["r2"], state["lecam"]
    torch.save(state, file)
    old = load_checkpoint(str(file))
    assert old.saved_config().model.g_conditioning == "concat" and old.saved_config().train.class_weight == 0
    assert old.saved_config().train.r2_gamma == 0 and old.saved_config().train.lecam_weight == 0
    load_generator(old, torch.device("cpu"))  # the weights fit
    resumed = old.saved_config()
    resumed.train.steps = 4
    assert train(resumed, resume=old, log=lambda _: None).step == 4


def test_a_run_folder_has_one_writer_at_a_time(tmp_path):
    lock = RunLock(tmp_path)
    with pytest.raises(GanError, match=rf"{tmp_path} is being trained by another process \(PID {os.getpid()}\)"):
        RunLock(tmp_path)
    lock.release()
    RunLock(tmp_path).release()


def test_newest_run_is_the_highest_numbered_of_that_name(tmp_path):
    assert newest_run(str(tmp_path / "missing"), "job") is None
    for name in ("00000-job", "00001-other", "00002-job", "00003-jobs"):
        (tmp_path / name).mkdir()
    assert newest_run(str(tmp_path), "job") == tmp_path / "00002-job"
    assert newest_run(str(tmp_path), "a b") is None


def test_taking_a_run_removes_the_temp_files_of_killed_writers(tmp_path):
    stale = tmp_path / ".checkpoint-0000500.pt.4242-1.tmp"
    stale.write_bytes(b"half a checkpoint")
    (tmp_path / "checkpoint-0000400.pt").write_bytes(b"a complete one")
    RunLock(tmp_path).release()
    assert not stale.exists() and (tmp_path / "checkpoint-0000400.pt").exists()
