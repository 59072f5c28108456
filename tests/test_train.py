import errno
import json
import os
import signal
from pathlib import Path

import pytest
import torch

import gan.train as train_module
from helpers import stats_records, tiny_config, write_images
from gan.checkpoint import list_checkpoints, load_checkpoint
from gan.distributed import Ranks
from gan.errors import GanError
from gan.state import build_state
from gan.train import train


def _tensors(state: dict, prefix: str = ""):
    """Every tensor in a nested state dict, by a dotted name."""
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            yield name, value
        elif isinstance(value, dict):
            yield from _tensors(value, name + ".")


def assert_same_training_state(a: dict, b: dict):
    ta, tb = dict(_tensors(a)), dict(_tensors(b))
    assert ta.keys() == tb.keys()
    for name in ta:
        assert torch.equal(ta[name], tb[name]), f"{name} differs"


def test_run_folder_holds_config_stats_grids_and_checkpoints(class_folder, tmp_path):
    cfg = tiny_config(class_folder, tmp_path / "runs", steps=4)
    result = train(cfg, log=lambda _: None)
    assert result.run_dir.name == "00000-classes" and result.step == 4 and not result.interrupted
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.json", "stats.jsonl", "reals.png", "fakes-0000000.png", "fakes-0000004.png"} <= names
    assert [p.name for p in list_checkpoints(result.run_dir)] == ["checkpoint-0000002.pt", "checkpoint-0000004.pt"]
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["data"]["class_names"] == ["cats", "dogs"] and saved["data"]["class_counts"] == [6, 5]
    assert saved["data"]["channels"] == 3  # auto resolved from the data
    stats = stats_records(result.run_dir)
    assert [s["step"] for s in stats] == [2, 4]
    assert {"Loss/D", "Loss/G", "D/real", "D/fake", "Speed/img_per_s", "LR/G", "LR/D"} <= stats[0].keys()
    assert 0 <= stats[0]["D/real"] <= 1


def test_runs_are_numbered_and_never_reused(flat_folder, tmp_path):
    first = train(tiny_config(flat_folder, tmp_path / "runs", steps=1), log=lambda _: None)
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=1)
    cfg.train.name = "second try!"
    second = train(cfg, log=lambda _: None)
    assert (first.run_dir.name, second.run_dir.name) == ("00000-flat", "00001-second-try")


def test_resume_is_bit_identical_to_an_uninterrupted_run(class_folder, tmp_path):
    # Conditional (conditional BatchNorm, class term), augmented half the time, mirrored, class-balanced, hinge
    # loss with lazy R1: every random stream and every piece of state must come back.
    def settings(cfg):
        cfg.data.mirror, cfg.data.class_balance = True, True
        cfg.model.g_conditioning, cfg.train.class_weight = "cbn", 0.5
        cfg.train.r1_gamma, cfg.train.r1_every, cfg.train.loss = 1.0, 2, "hinge"
        cfg.train.augment, cfg.train.augment_p = "translation,cutout,color,flip", "0.5"  # augmentation really runs
        return cfg

    full = train(settings(tiny_config(class_folder, tmp_path / "a", steps=6)), log=lambda _: None)
    half = train(settings(tiny_config(class_folder, tmp_path / "b", steps=3)), log=lambda _: None)
    checkpoint = load_checkpoint(str(half.run_dir))
    cfg = checkpoint.saved_config()
    cfg.train.steps = 6
    resumed = train(cfg, resume=checkpoint, log=lambda _: None)

    assert resumed.run_dir == half.run_dir and resumed.step == 6
    a, b = load_checkpoint(str(full.checkpoint)).state, load_checkpoint(str(resumed.checkpoint)).state
    assert_same_training_state(a, b)
    assert [s["step"] for s in stats_records(half.run_dir)] == [2, 3, 4, 6]


@pytest.mark.parametrize("options", [
    {"loss": "rpgan"},
    {"r1_gamma": 1.0, "r2_gamma": 2.0, "r1_every": 2, "gamma_final": 0.1, "gamma_decay_steps": 6},
    {"lecam_weight": 0.5},
    {"freeze_d": 1, "loss": "rpgan", "r2_gamma": 1.0, "r1_every": 2, "lecam_weight": 0.3},
    {"class_blend_steps": 6, "class_weight": 0.5},
], ids=["rpgan", "r1-r2-decaying", "lecam", "freeze-d-and-all", "transitional-conditioning"])
def test_resume_is_bit_identical_with_each_loss_and_regulariser(class_folder, tmp_path, options):
    def settings(steps, out):
        cfg = tiny_config(class_folder, tmp_path / out, steps=steps)
        cfg.train.augment_p = "0.5"
        for name, value in options.items():
            setattr(cfg.train, name, value)
        return cfg

    full = train(settings(6, "a"), log=lambda _: None)
    half = train(settings(3, "b"), log=lambda _: None)
    checkpoint = load_checkpoint(str(half.run_dir))
    cfg = checkpoint.saved_config()
    cfg.train.steps = 6
    resumed = train(cfg, resume=checkpoint, log=lambda _: None)
    a, b = load_checkpoint(str(full.checkpoint)).state, load_checkpoint(str(resumed.checkpoint)).state
    assert_same_training_state(a, b)
    stats = stats_records(full.run_dir)
    for name, weight in (("Loss/R2", "r2_gamma"), ("Loss/LeCam", "lecam_weight")):
        assert (name in stats[-1]) == (weight in options)
    if "lecam_weight" in options:
        assert a["lecam"]["real"] != 0 and a["lecam"]["fake"] != 0  # the moving averages are in the state


def test_a_per_class_run_resumes_bit_identically_with_each_member_frozen_alike(class_folder, tmp_path):
    def settings(steps, out):
        cfg = tiny_config(class_folder, tmp_path / out, steps=steps)
        cfg.model.conditional, cfg.train.freeze_d, cfg.train.augment_p = "per-class", 1, "0.5"
        return cfg

    full = train(settings(6, "a"), log=lambda _: None)
    half = train(settings(3, "b"), log=lambda _: None)
    checkpoint = load_checkpoint(str(half.run_dir))
    assert checkpoint.saved_config().model.conditional == "per-class"
    cfg = checkpoint.saved_config()
    cfg.train.steps = 6
    resumed = train(cfg, resume=checkpoint, log=lambda _: None)
    a, b = load_checkpoint(str(full.checkpoint)).state, load_checkpoint(str(resumed.checkpoint)).state
    assert_same_training_state(a, b)
    # The frozen first block of every member: its weights (not spectral norm's power-iteration vectors) never move.
    first = {name: value for name, value in a["D"].items()
             if ".features.0." in name and (name.endswith("bias") or name.endswith("original"))}
    assert {name.split(".")[1] for name in first} == {"0", "1"} and all(torch.equal(value, load_checkpoint(str(full.run_dir / "checkpoint-0000002.pt"))
                                               .state["D"][name]) for name, value in first.items())


def test_same_seed_repeats_a_run_and_another_seed_does_not(flat_folder, tmp_path):
    runs = []
    for seed in (0, 0, 1):
        cfg = tiny_config(flat_folder, tmp_path / "runs", steps=2)
        cfg.train.seed = seed
        runs.append(load_checkpoint(str(train(cfg, log=lambda _: None).checkpoint)).state)
    assert torch.equal(runs[0]["G"]["net.0.weight"], runs[1]["G"]["net.0.weight"])
    assert not torch.equal(runs[0]["G"]["net.0.weight"], runs[2]["G"]["net.0.weight"])


def test_resume_with_another_model_shape_is_refused(flat_folder, tmp_path):
    done = train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=lambda _: None)
    checkpoint = load_checkpoint(str(done.run_dir))
    cfg = checkpoint.saved_config()
    cfg.train.steps, cfg.model.g_channels = 4, 16
    with pytest.raises(GanError, match="different model shape .*--g-channels 8 in the checkpoint, 16 now"):
        train(cfg, resume=checkpoint, log=lambda _: None)


def test_resume_needs_more_steps(flat_folder, tmp_path):
    done = train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=lambda _: None)
    checkpoint = load_checkpoint(str(done.run_dir))
    with pytest.raises(GanError, match="already at step 2; pass --steps larger"):
        train(checkpoint.saved_config(), resume=checkpoint, log=lambda _: None)


def test_keep_deletes_all_but_the_newest_checkpoints(flat_folder, tmp_path):
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=5)
    cfg.train.checkpoint_every, cfg.train.keep = 1, 2
    result = train(cfg, log=lambda _: None)
    assert [p.name for p in list_checkpoints(result.run_dir)] == ["checkpoint-0000004.pt", "checkpoint-0000005.pt"]


def test_fewer_images_than_the_batch_still_trains(tmp_path):
    write_images(tmp_path / "three", 3)
    cfg = tiny_config(tmp_path / "three", tmp_path / "runs", steps=2)
    cfg.train.batch_size = 8
    assert train(cfg, log=lambda _: None).step == 2


def test_ctrl_c_finishes_the_step_saves_and_returns(flat_folder, tmp_path, monkeypatch):
    real_step = train_module.train_step

    def step_then_interrupt(*args):
        stats = real_step(*args)
        if args[-1] == 3:
            signal.raise_signal(signal.SIGINT)
        return stats

    monkeypatch.setattr(train_module, "train_step", step_then_interrupt)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN, not Python's handler, under `nohup ... &`
    lines = []
    result = train(tiny_config(flat_folder, tmp_path / "runs", steps=50), log=lines.append)
    assert result.interrupted and result.step == 3
    assert result.checkpoint.name == "checkpoint-0000003.pt" and result.checkpoint.exists()
    assert f"gan train --resume {result.run_dir}" in lines[-1]
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_resume_from_an_older_checkpoint_branches_into_a_new_folder(flat_folder, tmp_path):
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=6)
    cfg.train.keep = 5
    original = train(cfg, log=lambda _: None).run_dir
    before = sorted(p.name for p in original.iterdir())
    older = load_checkpoint(str(original / "checkpoint-0000002.pt"))
    resumed_cfg = older.saved_config()
    resumed_cfg.train.steps = 4
    lines = []
    branch = train(resumed_cfg, resume=older, log=lines.append)
    assert branch.run_dir.name == "00001-flat" and branch.step == 4
    assert any("not the newest checkpoint" in line for line in lines)
    assert sorted(p.name for p in original.iterdir()) == before  # the original run is untouched
    assert (branch.run_dir / "reals.png").exists() and (branch.run_dir / "checkpoint-0000004.pt").exists()


def test_a_run_folder_that_lost_its_config_resumes_in_place_and_gets_it_back(flat_folder, tmp_path):
    run = train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=lambda _: None).run_dir
    saved = (run / "config.json").read_text()
    (run / "config.json").unlink()
    checkpoint = load_checkpoint(str(run))
    cfg = checkpoint.saved_config()
    cfg.train.steps = 4
    lines = []
    assert train(cfg, resume=checkpoint, log=lines.append).run_dir == run
    assert f"{run} had lost its config.json: written again from the checkpoint" in lines
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4
    assert json.loads(saved)["model"] == json.loads((run / "config.json").read_text())["model"]
    assert sorted(p.name for p in tmp_path.joinpath("runs").iterdir()) == [run.name]  # no branch


def test_a_checkpoint_copied_out_of_its_run_resumes_into_a_new_run_folder(flat_folder, tmp_path):
    run = train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=lambda _: None).run_dir
    copied = tmp_path / "downloads" / "checkpoint-0000002.pt"
    copied.parent.mkdir()
    copied.write_bytes((run / "checkpoint-0000002.pt").read_bytes())
    checkpoint = load_checkpoint(str(copied))
    cfg = checkpoint.saved_config()
    cfg.train.steps = 4
    lines = []
    branch = train(cfg, resume=checkpoint, log=lines.append).run_dir
    assert f"{copied} is not in a run folder: continuing in a new run folder {branch}" in lines
    assert sorted(p.name for p in copied.parent.iterdir()) == [copied.name]


def test_a_resume_that_fails_leaves_the_run_folder_as_it_was(flat_folder, tmp_path):
    run = train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=lambda _: None).run_dir
    config_before = (run / "config.json").read_bytes()
    (flat_folder / "img000.png").unlink()  # now 9 images, the checkpoint saw 10
    checkpoint = load_checkpoint(str(run))
    cfg = checkpoint.saved_config()
    cfg.train.steps, cfg.train.d_lr = 4, 0.5
    with pytest.raises(GanError, match="now has 9 usable images but the checkpoint was trained on 10"):
        train(cfg, resume=checkpoint, log=lambda _: None)
    assert (run / "config.json").read_bytes() == config_before


def test_changed_files_are_reported_on_resume(flat_folder, tmp_path):
    run = train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=lambda _: None).run_dir
    image = flat_folder / "img003.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    checkpoint = load_checkpoint(str(run))
    cfg = checkpoint.saved_config()
    cfg.train.steps = 3
    lines = []
    train(cfg, resume=checkpoint, log=lines.append)
    assert any(line.startswith(f"warning: files in {flat_folder} changed since checkpoint-0000002.pt") for line in lines)


def test_saved_data_path_is_absolute_so_resume_works_from_anywhere(flat_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(flat_folder.parent)
    run = train(tiny_config(Path("flat"), tmp_path / "runs", steps=2), log=lambda _: None).run_dir
    monkeypatch.chdir(tmp_path.parent)
    checkpoint = load_checkpoint(str(run))
    assert checkpoint.saved_config().data.path == str(flat_folder)
    cfg = checkpoint.saved_config()
    cfg.train.steps = 3
    assert train(cfg, resume=checkpoint, log=lambda _: None).step == 3


def test_small_class_folder_data_gets_the_small_data_defaults(class_folder, tmp_path):
    from PIL import Image

    cfg = tiny_config(class_folder, tmp_path / "runs", steps=4)
    lines = []
    result = train(cfg, log=lines.append)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["model"]["conditional"] == "on" and saved["model"]["spectral_norm"] == "on"
    assert saved["train"]["augment"] == "translation,cutout,color" and saved["train"]["augment_p"] == "auto"
    assert "11 images: conditional on 2 classes (concat G, class term 1), augment translation,cutout,color (p auto)" in "\n".join(lines)
    stats = stats_records(result.run_dir)[-1]
    assert {"Augment/p", "Augment/rt"} <= stats.keys() and "Loss/R1" not in stats
    # one row of 8 per class, in the fakes grid and in the reals grid
    assert Image.open(result.run_dir / "fakes-0000004.png").size == (2 + 8 * 18, 2 + 2 * 18)
    assert Image.open(result.run_dir / "reals.png").size == (2 + 8 * 18, 2 + 2 * 18)


def test_plain_settings_and_hinge_with_r1(flat_folder, tmp_path):
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=4)
    cfg.model.spectral_norm, cfg.train.augment = "off", "none"
    cfg.train.loss, cfg.train.r1_gamma, cfg.train.r1_every = "hinge", 10.0, 2
    result = train(cfg, log=lambda _: None)
    stats = stats_records(result.run_dir)
    assert all(s["Loss/R1"] > 0 for s in stats) and "Augment/p" not in stats[0]
    saved = load_checkpoint(str(result.run_dir)).saved_config()
    assert saved.model.conditional == "off"  # one class: nothing to condition on


def test_fixed_augment_p_is_used_and_kept(class_folder, tmp_path):
    cfg = tiny_config(class_folder, tmp_path / "runs", steps=2)
    cfg.train.augment, cfg.train.augment_p = "translation,flip", "0.3"
    result = train(cfg, log=lambda _: None)
    state = load_checkpoint(str(result.run_dir)).state
    assert state["augment_p"]["p"].item() == pytest.approx(0.3)


def test_a_fixed_augment_p_given_on_resume_is_used(class_folder, tmp_path):
    cfg = tiny_config(class_folder, tmp_path / "runs", steps=2)
    cfg.train.augment_p = "0.7"
    run = train(cfg, log=lambda _: None).run_dir
    checkpoint = load_checkpoint(str(run))
    resumed = checkpoint.saved_config()
    resumed.train.steps, resumed.train.augment_p = 3, "0.2"
    train(resumed, resume=checkpoint, log=lambda _: None)
    assert load_checkpoint(str(run)).state["augment_p"]["p"].item() == pytest.approx(0.2)


def test_a_missing_feature_extractor_fails_before_the_run_starts(flat_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=2)
    cfg.metrics.features = "inception"
    with pytest.raises(GanError, match=r"^cannot download the Inception weights \(OSError: .*Network is unreachable"):
        train(cfg, log=lambda _: None)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_single_image_trains_without_evaluation(tmp_path):
    write_images(tmp_path / "one", 1)
    lines = []
    result = train(tiny_config(tmp_path / "one", tmp_path / "runs", steps=2), log=lines.append)
    assert any("the metrics need at least 2 real images" in line for line in lines)
    assert result.checkpoint.exists() and not (result.run_dir / "best.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_steps_never_wait_for_the_gpu(tmp_path):
    # A host sync per step (.item(), a plain CPU-to-GPU copy) stops the CPU from queueing work ahead of the GPU.
    from gan.data import load_dataset
    from gan.device import autocast_dtype

    write_images(tmp_path / "pets" / "cats", 6, seed=1)
    write_images(tmp_path / "pets" / "dogs", 6, seed=2)
    cfg = tiny_config(tmp_path / "pets", tmp_path / "runs")
    cfg.train.device, cfg.train.r1_gamma, cfg.train.r1_every = "cuda", 1.0, 2  # R1 steps included
    dataset = load_dataset(cfg.data, log=lambda _: None)
    train_module.record_dataset(cfg, dataset, None, log=lambda _: None)
    device = torch.device("cuda")
    state = build_state(cfg, dataset, device)
    amp = autocast_dtype(device, cfg.train.precision)
    train_module.train_step(state, cfg, amp, 1)  # the first step may sync (allocator, cuDNN's choices)
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = [train_module.train_step(state, cfg, amp, step) for step in range(2, 6)]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(torch.isfinite(value).all() for s in stats for value in s.values())


def test_the_batch_must_split_evenly_over_the_processes(flat_folder, tmp_path):
    with pytest.raises(GanError, match=r"--batch-size 8 \(the whole batch, over all processes\) does not split "
                                       r"evenly over 3 processes: give a multiple of 3"):
        train_module.train(tiny_config(flat_folder, tmp_path / "runs"), ranks=Ranks(rank=0, processes=3))
    assert not (tmp_path / "runs").exists()


def test_every_process_needs_a_share_of_the_evaluation_samples(flat_folder, tmp_path):
    cfg = tiny_config(flat_folder, tmp_path / "runs")
    cfg.train.eval_count = 2
    with pytest.raises(GanError, match=r"--eval-count 2 is fewer samples than the 4 processes that share them"):
        train_module.train(cfg, ranks=Ranks(rank=0, processes=4))


def test_classes_too_small_to_learn_are_named_in_one_warning(class_folder, tmp_path):
    for i in range(7):
        write_images(class_folder / f"rare{i}", 1 + i % 2, seed=10 + i)
    lines = []
    train(tiny_config(class_folder, tmp_path / "runs", steps=1), log=lines.append)
    warnings = [line for line in lines if "fewer than 5 images" in line]
    assert warnings == ["warning: 7 classes have fewer than 5 images: rare0 (1), rare1 (2), rare2 (1), rare3 (2), "
                        "rare4 (1) and 2 more. A GAN cannot learn a class from so few, nor can its labels be checked; "
                        "add images, or leave those classes out"]


def test_classes_big_enough_get_no_such_warning(class_folder, tmp_path):
    lines = []
    train(tiny_config(class_folder, tmp_path / "runs", steps=1), log=lines.append)
    assert not any("fewer than" in line for line in lines)


def test_a_resume_of_a_run_being_trained_stops_instead_of_forking_it(flat_folder, tmp_path):
    from gan.checkpoint import RunLock
    from gan.errors import GanError

    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=2)
    cfg.train.checkpoint_every = 1
    run_dir = train(cfg, log=lambda _: None).run_dir
    older = load_checkpoint(str(run_dir / "checkpoint-0000001.pt"))  # newest when this resume chose it
    first = RunLock(run_dir)  # the run's own process, which has saved step 2 since
    try:
        with pytest.raises(GanError, match="is being trained by another process"):
            train(older.saved_config(), resume=older, log=lambda _: None)
    finally:
        first.release()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]  # no fork


def test_a_resume_whose_data_folder_moved_says_so_and_how_to_point_at_it(flat_folder, tmp_path):
    from gan.errors import GanError

    run_dir = train(tiny_config(flat_folder, tmp_path / "runs", steps=1), log=lambda _: None).run_dir
    checkpoint = load_checkpoint(str(run_dir))
    (tmp_path / "elsewhere").mkdir()
    moved = flat_folder.rename(tmp_path / "elsewhere" / flat_folder.name)
    cfg = checkpoint.saved_config()
    cfg.train.steps = 2
    with pytest.raises(GanError, match=r"that .* was trained on no longer exists: if it moved, give its new place "
                                       r"with --data"):
        train(cfg, resume=checkpoint, log=lambda _: None)
    cfg.data.path = str(moved)
    assert train(cfg, resume=checkpoint, log=lambda _: None).run_dir == run_dir


def refuse_locks(monkeypatch, code: int):
    """The run folder's lock cannot be written, as in a read-only folder or on a disk with 0 bytes free (the tests
    may run as root, whom permissions do not stop)."""
    def refused(run_dir):
        raise OSError(code, os.strerror(code), str(Path(run_dir) / ".lock"))

    monkeypatch.setattr(train_module, "RunLock", refused)


def test_a_resume_of_a_read_only_run_says_to_make_it_writable(flat_folder, tmp_path, monkeypatch):
    run_dir = train(tiny_config(flat_folder, tmp_path / "runs", steps=1), log=lambda _: None).run_dir
    checkpoint = load_checkpoint(str(run_dir))
    cfg = checkpoint.saved_config()
    cfg.train.steps = 2
    refuse_locks(monkeypatch, errno.EROFS)
    with pytest.raises(GanError) as error:
        train(cfg, resume=checkpoint, log=lambda _: None)
    assert str(error.value).startswith(f"cannot write {run_dir / '.lock'} (Read-only file system; ")
    assert str(error.value).endswith(f"the newest complete checkpoint is checkpoint-0000001.pt. Make {run_dir} "
                                     f"writable, then continue with: gan train --resume {run_dir}")


def test_a_new_run_on_a_full_disk_leaves_no_empty_run_folder(flat_folder, tmp_path, monkeypatch):
    refuse_locks(monkeypatch, errno.ENOSPC)
    for _ in range(2):
        with pytest.raises(GanError, match=r"\(the disk is full; .*no checkpoint was saved yet. Free some space, then "
                                           r"run the same command again$"):
            train(tiny_config(flat_folder, tmp_path / "runs", steps=1), log=lambda _: None)
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_time_limit_ends_the_run_as_steps_would_with_an_evaluation_and_a_checkpoint(flat_folder, tmp_path,
                                                                                      monkeypatch):
    from types import SimpleNamespace

    clock = iter([0.0, 10.0, 20.0, 61.0])  # the deadline is set at 0; the third step ends past one minute
    monkeypatch.setattr(train_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=1000)
    cfg.train.time_limit, cfg.train.eval_every, cfg.train.checkpoint_every = "1m", 500, 500
    result = train(cfg, log=lambda _: None)
    assert (result.step, result.stopped_early, result.interrupted) == (3, True, False)
    assert [p.name for p in list_checkpoints(result.run_dir)] == ["checkpoint-0000003.pt"]
    assert (result.run_dir / "best.pt").is_file()  # evaluated at its last step, as at --steps
