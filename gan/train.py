"""The training loop: `train(cfg)` sets a run up (its data, training state and folder), or resumes one, steps it
to --steps (or until --patience runs out) and says where it ended; what falls due between the steps is gan.run's."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from gan import device as devices
from gan.checkpoint import Checkpoint, RunLock, is_run_folder, list_checkpoints, new_run_dir, save_config, unwritable
from gan.config import RunConfig, parse_policy
from gan.data import ImageDataset, load_dataset
from gan.distributed import SINGLE, Ranks
from gan.errors import GanError
from gan.files import LOCK
from gan.evaluate import training_space
from gan.features import FeatureSpace
from gan.judge import label_warnings
from gan.memory import check_fits, out_of_memory_explained
from gan.options import seconds, shape_differences
from gan.run import Run
from gan.state import TrainingState, build_state
from gan.step import train_step
from gan.stopping import StopSignals
from gan.transfer import load_source, start_from

@dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path
    interrupted: bool  # stopped before --steps by Ctrl-C / SIGTERM: a resume carries it on
    stopped_early: bool = False  # --patience or --time-limit ended it before --steps: a normal end


def out_of_patience(checkpoint: Checkpoint, cfg: RunConfig) -> bool:
    """Whether `checkpoint` had used up --patience (as `cfg` sets it): its run ended there, done."""
    patience = cfg.train.patience
    return bool(patience) and int(checkpoint.state.get("stale_evaluations", 0)) >= patience


def record_dataset(cfg: RunConfig, dataset: ImageDataset, resumed: Checkpoint | None, log) -> None:
    """Write what the data decided (channels, classes, absolute paths) into the config; check a resume's data."""
    if resumed:
        trained_on = resumed.saved_config().data.class_names
        if trained_on != dataset.class_names:
            raise GanError(
                f"the classes in {cfg.data.path} ({', '.join(dataset.class_names)}) differ from the ones "
                f"{resumed.path} was trained on ({', '.join(trained_on)}); resume needs the same data"
            )
        if resumed.data_fingerprint != dataset.fingerprint:
            log(f"warning: files in {cfg.data.path} changed since {resumed.path.name} was saved (names, sizes or "
                f"dates); training goes on, but not exactly as the uninterrupted run would have")
    cfg.data.channels = int(dataset.images.shape[1])
    cfg.data.class_names = dataset.class_names
    cfg.data.class_counts = dataset.class_counts
    cfg.data.num_images = len(dataset)
    cfg.resolve_auto(len(dataset), len(dataset.class_names))
    _make_paths_absolute(cfg)
    _warn_of_tiny_classes(dataset, log)


MIN_CLASS_IMAGES = 5  # the judge needs a fifth of a class held out to say whether its labels hold


def _warn_of_tiny_classes(dataset: ImageDataset, log) -> None:
    """One line naming the classes with too few images to learn from (with 200 of them, not 200 lines)."""
    tiny = [f"{name} ({count})" for name, count in zip(dataset.class_names, dataset.class_counts)
            if 0 < count < MIN_CLASS_IMAGES]
    if tiny:
        shown = ", ".join(tiny[:5]) + (f" and {len(tiny) - 5} more" if len(tiny) > 5 else "")
        log(f"warning: {len(tiny)} class{'es have' if len(tiny) > 1 else ' has'} fewer than {MIN_CLASS_IMAGES} "
            f"images: {shown}. A GAN cannot learn a class from so few, nor can its labels be checked; add images, "
            f"or leave those classes out")


def _make_paths_absolute(cfg: RunConfig) -> None:
    """So that `--resume` works from any working directory."""
    def absolute(path: str) -> str:
        return str(Path(path).expanduser().resolve()) if path else path

    cfg.data.path = absolute(cfg.data.path)
    cfg.data.cache_dir = absolute(cfg.data.cache_dir)
    cfg.metrics.inception_weights = absolute(cfg.metrics.inception_weights)
    if cfg.metrics.features not in ("auto", "inception", "random"):
        cfg.metrics.features = absolute(cfg.metrics.features)


def _check_resumable(checkpoint: Checkpoint, cfg: RunConfig) -> None:
    differences = shape_differences(checkpoint.saved_config(), cfg)
    if differences:
        raise GanError(
            f"cannot resume {checkpoint.path}: it was trained with a different model shape "
            f"({'; '.join(differences)}). Drop those flags to resume, or start a new run."
        )
    if checkpoint.step >= cfg.train.steps:
        raise GanError(
            f"{checkpoint.path} is already at step {checkpoint.step}; pass --steps larger than that to train on"
        )


def _continues_its_run(resume: Checkpoint) -> bool:
    folder = resume.path.parent
    saved = list_checkpoints(folder)
    return is_run_folder(folder) and bool(saved) and saved[-1].resolve() == resume.path.resolve()


def _claim_run_folder(cfg: RunConfig, resume: Checkpoint | None, log) -> tuple[Path, RunLock]:
    """The run folder, locked for this process. A resume continues in its run folder when it starts from that
    run's newest checkpoint; a resume from an older or a stray checkpoint gets a new folder, so it never
    overwrites or mixes with later work."""
    if resume and is_run_folder(resume.path.parent):
        # Locked before the newest checkpoint is looked at: a run being trained, which may have saved a newer one
        # since this resume chose its checkpoint, stops this process instead of being forked into a new folder.
        lock = _lock(resume.path.parent)
        if _continues_its_run(resume):
            if not (resume.path.parent / "config.json").is_file():
                log(f"{resume.path.parent} had lost its config.json: written again from the checkpoint")
            return resume.path.parent, lock
        lock.release()
    run_dir = new_run_dir(cfg.train.out, cfg.train.name or Path(cfg.data.path).name)
    if resume:
        why = "is not the newest checkpoint of its run" if is_run_folder(resume.path.parent) else "is not in a run folder"
        log(f"{resume.path} {why}: continuing in a new run folder {run_dir}")
    try:
        return run_dir, _lock(run_dir)
    except GanError:
        shutil.rmtree(run_dir, ignore_errors=True)  # it is new and empty: a failed try leaves no folder behind
        raise


def _lock(run_dir: Path) -> RunLock:
    try:
        return RunLock(run_dir)
    except OSError as error:  # a full disk, a read-only folder
        raise unwritable(run_dir, Path(run_dir) / LOCK, error) from None


def _shared_run_folder(cfg: RunConfig, resume: Checkpoint | None, log, ranks: Ranks) -> tuple[Path, RunLock | None]:
    """The first process claims the folder; the others learn which (or its error, so that all of them stop)."""
    claimed, lock = None, None
    if ranks.main:
        try:
            claimed, lock = _claim_run_folder(cfg, resume, log)
        except Exception as error:  # any: the others wait for word, and must stop too
            claimed = error if isinstance(error, GanError) else GanError(f"cannot claim the run folder: {error}")
    claimed = ranks.broadcast(claimed)
    if isinstance(claimed, GanError):
        raise claimed
    return Path(claimed), lock


def _describe(cfg: RunConfig) -> str:
    """One line on what the automatic settings chose for this data."""
    m, t = cfg.model, cfg.train
    classes = "unconditional"
    if m.conditional == "per-class":
        classes = f"one G and D per class ({cfg.num_classes} classes)"
    elif cfg.num_classes:
        term = f", class term {t.class_weight:g}" if t.class_weight else ""
        classes = f"conditional on {cfg.num_classes} classes ({m.g_conditioning} G{term})"
    augment = f"augment {t.augment} (p {t.augment_p})" if parse_policy(t.augment) else "no augmentation"
    norm = "spectral norm" if m.spectral_norm == "on" else "BatchNorm"
    decay = f" decaying to {t.gamma_final:g}x" if t.gamma_final < 1 else ""
    terms = [f"{name} {weight:g}" for name, weight in (("R1", t.r1_gamma), ("R2", t.r2_gamma)) if weight]
    regularisers = [f"{' and '.join(terms)}{decay}"] if terms else []
    regularisers += [f"LeCam {t.lecam_weight:g}"] if t.lecam_weight else []
    regularisers += [f"first {t.freeze_d} D blocks frozen"] if t.freeze_d else []
    best = f", best.pt by {t.best_by}" if t.eval_every else ""
    best += f", patience {t.patience} evaluations" if t.patience else ""
    return (f"{cfg.data.num_images} images: {classes}, {augment}, D with {norm}, {t.loss} loss"
            f"{''.join(', ' + r for r in regularisers)}{best}")


def _check_processes(cfg: RunConfig, ranks: Ranks, resume: Checkpoint | None) -> None:
    t = cfg.train
    if t.batch_size % ranks.processes:
        raise GanError(f"--batch-size {t.batch_size} (the whole batch, over all processes) does not split "
                       f"evenly over {ranks.processes} processes: give a multiple of {ranks.processes}")
    if t.eval_every and 0 < t.eval_count < ranks.processes:
        raise GanError(f"--eval-count {t.eval_count} is fewer samples than the {ranks.processes} processes that "
                       f"share them: give at least {ranks.processes}, or 0 (auto)")
    # Each process found its checkpoint on its own (a folder not shared between machines, or a checkpoint written
    # in between, would start them from different states).
    mine = (str(resume.path.resolve()), resume.step) if resume else None
    first = ranks.broadcast(mine)
    if ranks.any(mine != first):
        raise GanError(f"the training processes would start from different checkpoints ({first} on the first): "
                       f"put --out on a filesystem every machine shares, and run one job per run folder")


def _quiet(text: str) -> None:
    """What the processes other than the first print: nothing (the first speaks for all)."""


def train(cfg: RunConfig, resume: Checkpoint | None = None, log: Callable[[str], None] = print,
          ranks: Ranks = SINGLE) -> TrainResult:
    """Train a new run (or carry `resume` on) to `cfg.train.steps`, writing everything into the run folder.

    Under torchrun, every process calls this with the same arguments and its `ranks`; only the first writes."""
    log = log if ranks.main else _quiet
    cfg.validate()
    _check_processes(cfg, ranks, resume)
    if resume:
        _check_resumable(resume, cfg)
    device = torch.device(ranks.device) if ranks.processes > 1 else devices.pick_device(cfg.train.device)
    need = check_fits(cfg, device, ranks.processes)  # before decoding: a resolution too large fails there too
    with out_of_memory_explained(cfg, device, need):
        return _train(cfg, resume, device, log, ranks)


def _check_resumed_data(cfg: RunConfig, resume: Checkpoint | None) -> None:
    """A resume without --data reads the folder the run was trained on: if that has gone, say so (not 'check
    --data', which the user never gave)."""
    if resume and cfg.data.path == resume.saved_config().data.path and not Path(cfg.data.path).exists():
        raise GanError(f"the data folder {cfg.data.path} that {resume.path.parent} was trained on no longer exists: "
                       f"if it moved, give its new place with --data")


def _train(cfg: RunConfig, resume: Checkpoint | None, device: torch.device, log, ranks: Ranks) -> TrainResult:
    amp = devices.autocast_dtype(device, cfg.train.precision)
    _check_resumed_data(cfg, resume)
    with ranks.main_first():  # the first decodes the images and fills the cache; the others read it
        dataset = load_dataset(cfg.data, log)
    record_dataset(cfg, dataset, resume, log)

    t = cfg.train
    state = build_state(cfg, dataset, device, ranks)
    nets = state.nets
    start = 0
    if resume:
        state.load_state_dict(resume.state, log)
        start = resume.step
    elif t.init_from:
        start_from({"G": nets.G, "D": nets.D, "G_ema": nets.G_ema}, load_source(t.init_from), cfg, log)
    space = training_space(cfg, dataset, device, log)
    # Only now, with everything checked, does the run touch its folder.
    run_dir, lock = _shared_run_folder(cfg, resume, log, ranks)
    try:
        return _train_in(run_dir, cfg, state, dataset, space, start, resume, device, amp, log)
    except OSError as error:  # a full disk or lost permissions while writing grids, logs or the config
        raise unwritable(run_dir, error.filename or run_dir, error) from None
    finally:
        if lock:
            lock.release()


def _train_in(run_dir: Path, cfg: RunConfig, state: TrainingState, dataset: ImageDataset,
              space: FeatureSpace | None, start: int, resume: Checkpoint | None, device: torch.device, amp,
              log) -> TrainResult:
    if state.ranks.main:
        save_config(run_dir, cfg)
    _announce(run_dir, cfg, state.ranks, device, amp, resume, start, log)
    run = Run(run_dir, cfg, state, dataset, space, start, log)
    try:
        run.begin(start)
        step, checkpoint, stopped_early = _loop(run, start, amp)
    finally:
        run.close()
    interrupted = step < cfg.train.steps and not stopped_early
    if interrupted:
        log(f"stopped at step {step}; checkpoint {checkpoint}. Continue with: gan train --resume {run_dir}")
    else:  # the run's last word: the classes whose labels do not hold, from its last evaluation
        for line in label_warnings(run.last_scores, cfg.model.conditional):
            log(line)
    return TrainResult(run_dir, step, checkpoint, interrupted, stopped_early)


def _announce(run_dir: Path, cfg: RunConfig, ranks: Ranks, device: torch.device, amp, resume: Checkpoint | None,
              start: int, log) -> None:
    resuming = f", resuming {resume.path.name} at step {start}" if resume else ""
    log(f"run folder: {run_dir}  (device {device}, {'bf16 autocast' if amp else 'fp32'}{resuming})")
    if ranks.processes > 1:
        t = cfg.train
        log(f"{ranks.processes} processes: batch {t.batch_size} in all, {t.batch_size // ranks.processes} on each")
    log(_describe(cfg))


def _loop(run: Run, start: int, amp) -> tuple[int, Path | None, bool]:
    """Steps from `start` to --steps, with what falls due after each; returns the last step, its checkpoint and
    whether --patience or --time-limit ended the run there."""
    cfg, state = run.cfg, run.state
    t, ranks = cfg.train, state.ranks
    step, checkpoint, window, patience_ran_out = start, None, [], False
    stopping = out_of_time = False
    deadline = time.monotonic() + seconds(t.time_limit) if t.time_limit else math.inf
    with StopSignals() as stop:
        for step in range(start + 1, t.steps + 1):
            window.append(train_step(state, cfg, amp, step))
            # Read once (a signal arriving mid-save is handled after the next step). Processes agree on it, and on
            # the time, at the host syncs they share, every --log-every steps: agreeing every step would sync
            # every step.
            if ranks.processes == 1:
                stopping, out_of_time = stop.requested, time.monotonic() > deadline
            elif step % t.log_every == 0:
                stopping, out_of_time = ranks.any(stop.requested), ranks.any(time.monotonic() > deadline)
            else:
                stopping = out_of_time = False
            if stopping:
                run.message(f"stopping at step {step}: saving a checkpoint (Ctrl-C again aborts)")
            elif out_of_time:
                run.message(f"--time-limit {t.time_limit} reached at step {step}: ending the run as at --steps")
            end = step == t.steps or out_of_time
            last = end or stopping
            if last or step % t.log_every == 0 or step % t.checkpoint_every == 0:
                run.report(window, step)
            # Before the checkpoint, which holds what the evaluation counted for --patience: a resume then goes on
            # exactly, and a run that --patience ends gets its final report, grid and checkpoint.
            if run.evaluator and not stopping and (end or step % t.eval_every == 0):
                patience_ran_out = _evaluate(run, step, saving=last or step % t.checkpoint_every == 0)
                if patience_ran_out and window:
                    run.report(window, step)
                last = last or patience_ran_out
            if last or step % t.image_every == 0:
                run.save_grid(step)
            if last or step % t.checkpoint_every == 0:
                checkpoint = run.save(step)
            if last:
                break
    return step, checkpoint, patience_ran_out or (out_of_time and not stopping and step < t.steps)


def _evaluate(run: Run, step: int, saving: bool) -> bool:
    """run.evaluate(step); when it fails, the checkpoint due at this step is still written before the error goes
    on, so that a failing evaluation never costs training steps."""
    try:
        return run.evaluate(step)
    except Exception:
        if saving:
            run.save(step)
        raise
