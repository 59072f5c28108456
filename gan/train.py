"""The training loop: `train(cfg)` runs (or resumes) one GAN run in its own folder and says where it ended."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan import device as devices
from gan.augment import AugmentProbability, augment
from gan.checkpoint import (Checkpoint, RunLock, is_run_folder, list_checkpoints, new_run_dir, save_best, save_checkpoint,
                            save_config, unwritable)
from gan.config import RunConfig, parse_policy, shape_differences, to_dict
from gan.data import ImageDataset, RealBatches, load_dataset
from gan.distributed import SINGLE, Ranks
from gan.errors import GanError
from gan.evaluate import best_score_so_far, training_evaluator
from gan.judge import run_judge
from gan.losses import LOSSES, PAIRED, LeCam, gradient_penalty, penalty_weight
from gan.memory import check_fits, out_of_memory_explained
from gan.models import Discriminator, Generator, ema_decay_at, refresh_batchnorm_stats, update_ema
from gan.stopping import StopSignals
from gan.tracking import GRID_SIZE, Tracker
from gan.transfer import freeze_blocks, load_source, start_from

# What train_step returns, in this order.
STATS = ("Loss/D", "Loss/G", "D/real", "D/fake", "Loss/R1", "Loss/R2", "Loss/LeCam", "Loss/class", "Augment/p",
         "Augment/rt")
# What each evaluation logs, from Evaluator scores.
METRICS = {"Metrics/KID": "kid", "Metrics/FID": "fid", "Metrics/precision": "precision", "Metrics/recall": "recall",
           "Metrics/class_KID": "class_kid", "Metrics/label_agreement": "label_agreement"}

# Independent random streams derived from --seed; all of training's randomness comes from these generators.
_DATA_STREAM, _NOISE_STREAM, _GRID_STREAM, _NORM_STREAM, _AUGMENT_STREAM = range(5)
_GRID_ROWS = 16  # a conditional grid shows one row of 8 per class, for at most this many classes


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path
    interrupted: bool  # stopped early by Ctrl-C / SIGTERM


class TrainingDiverged(GanError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass
class Networks:
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module  # moving average of G: what grids and exports use
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    d_trainable: list[nn.Parameter]  # D's parameters less those --freeze-d holds fixed
    channels_last: bool  # the networks' memory layout, which real batches must match


@dataclass
class Loop:
    """Everything a training step reads and advances, and so everything a checkpoint must hold."""

    nets: Networks
    # nets.G and nets.D as training calls them: compiled, and with several processes under DDP
    G: nn.Module
    D: nn.Module  # for D's step
    D_penalised: nn.Module  # for D's steps with a gradient penalty, whose double backward compiled code cannot take
    D_for_G: nn.Module  # for G's step, which needs no gradients for D (so no DDP)
    ranks: Ranks
    batches: RealBatches
    noise: torch.Generator  # CPU: the same noise on every device
    augment_generator: torch.Generator  # on the training device, where augmentation runs
    augment_p: AugmentProbability
    policy: tuple[str, ...]
    r1: torch.Tensor  # the latest R1 and R2 penalties (they are only computed every --r1-every steps)
    r2: torch.Tensor
    lecam: LeCam


def seeded(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 8 + stream)


def build_networks(cfg: RunConfig, device: torch.device) -> Networks:
    """Fresh DCGAN networks (initialised from --seed) and their Adam optimizers on `device`."""
    shape = (cfg.data.resolution, cfg.data.channels)
    layout = devices.channels_last(device, cfg.train.compile)
    classes = cfg.num_classes
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's RNG
        torch.manual_seed(cfg.train.seed)
        G = devices.place(Generator(cfg.model, *shape, classes), device, layout)
        D = devices.place(Discriminator(cfg.model, *shape, classes), device, layout)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    t = cfg.train
    d_trainable = freeze_blocks(D, t.freeze_d, cfg.data.resolution)
    opt_G = torch.optim.Adam(G.parameters(), t.g_lr, (t.beta1, t.beta2), **devices.adam_options(device))
    opt_D = torch.optim.Adam(D.parameters(), t.d_lr, (t.beta1, t.beta2), **devices.adam_options(device))
    return Networks(G, D, G_ema, opt_G, opt_D, d_trainable, layout)


def build_loop(cfg: RunConfig, dataset: ImageDataset, device: torch.device, ranks: Ranks = SINGLE) -> Loop:
    """A fresh training state for `cfg` (resolved against `dataset`): networks, batches and random streams."""
    t = cfg.train
    nets = build_networks(cfg, device)
    adaptive = t.augment_p == "auto"
    D_synced = ranks.wrap(nets.D)
    D = devices.maybe_compile(D_synced, t.compile, device, t.compile_mode)
    return Loop(
        nets=nets,
        G=devices.maybe_compile(ranks.wrap(nets.G), t.compile, device, t.compile_mode),
        D=D,
        D_penalised=D_synced,
        D_for_G=D if ranks.processes == 1 else devices.maybe_compile(nets.D, t.compile, device, t.compile_mode),
        ranks=ranks,
        batches=RealBatches(dataset, t.batch_size, cfg.data.mirror, cfg.data.class_balance,
                            seeded(t.seed, _DATA_STREAM), device, ranks.rows(t.batch_size)),
        noise=seeded(t.seed, _NOISE_STREAM),
        augment_generator=seeded(t.seed, _AUGMENT_STREAM, device),
        augment_p=AugmentProbability(0.0 if adaptive else float(t.augment_p), adaptive, t.augment_target,
                                     t.batch_size, device, average=ranks.average),
        policy=parse_policy(t.augment),
        r1=torch.zeros((), device=device),
        r2=torch.zeros((), device=device),
        lecam=LeCam(device, average=ranks.average),
    )


def training_state(loop: Loop, step: int, cfg: RunConfig, data_fingerprint: str) -> dict:
    """Everything a resume needs, as plain tensors and dicts (loadable with weights_only=True)."""
    nets = loop.nets
    return {
        "step": step,
        "config": to_dict(cfg),
        "data_fingerprint": data_fingerprint,
        "G": nets.G.state_dict(),
        "D": nets.D.state_dict(),
        "G_ema": nets.G_ema.state_dict(),
        "opt_G": nets.opt_G.state_dict(),
        "opt_D": nets.opt_D.state_dict(),
        "batches": loop.batches.state_dict(),
        "noise": loop.noise.get_state(),
        "augment_generator": loop.augment_generator.get_state(),
        "augment_p": loop.augment_p.state_dict(),
        "r1": loop.r1.cpu(),
        "r2": loop.r2.cpu(),
        "lecam": loop.lecam.state_dict(),
    }


def _restore(checkpoint: Checkpoint, loop: Loop, cfg: RunConfig, log: Callable[[str], None]) -> None:
    state, nets = checkpoint.state, loop.nets
    for name in ("G", "D", "G_ema"):
        getattr(nets, name).load_state_dict(state[name])
    for opt, saved, lr in ((nets.opt_G, state["opt_G"], cfg.train.g_lr), (nets.opt_D, state["opt_D"], cfg.train.d_lr)):
        # Settings come from this run: learning rates may change on resume, and `fused` follows the device
        # (it must be set before loading, which places the step counters by it).
        now = {"lr": lr, "betas": (cfg.train.beta1, cfg.train.beta2), "fused": opt.param_groups[0]["fused"]}
        opt.load_state_dict({**saved, "param_groups": [{**group, **now} for group in saved["param_groups"]]})
        devices.match_parameter_layouts(opt)
    loop.batches.load_state_dict(state["batches"])
    loop.noise.set_state(state["noise"])
    # A generator's state is a CPU byte tensor whatever its device; a checkpoint from another device type
    # cannot continue the stream, so it starts a fresh one (only exactness across devices is lost).
    try:
        loop.augment_generator.set_state(state["augment_generator"])
    except RuntimeError:
        log("warning: the checkpoint's augmentation random state is from another device type; continuing with a "
            "fresh one (the run is no longer an exact continuation)")
    fixed_p = loop.augment_p.p.clone()
    loop.augment_p.load_state_dict(state["augment_p"])
    if cfg.train.augment_p != "auto":  # a fixed --augment-p given on resume wins over the saved one
        loop.augment_p.p = fixed_p
    loop.r1 = state["r1"].to(loop.r1.device)
    if "lecam" in state:  # not in checkpoints of format 3 and older, which trained without R2 and LeCam
        loop.r2 = state["r2"].to(loop.r2.device)
        loop.lecam.load_state_dict(state["lecam"])


def train_step(loop: Loop, cfg: RunConfig, device: torch.device, amp: torch.dtype | None, step: int) -> torch.Tensor:
    """One discriminator step and one generator step on the same fakes; returns STATS as a device tensor."""
    nets, G, D, t = loop.nets, loop.G, loop.D, cfg.train
    if devices.replays_cuda_graphs(device, t.compile, t.compile_mode):
        torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs are no longer read
    d_loss, g_loss = LOSSES[t.loss]
    real, labels = next(loop.batches)
    labels = labels if nets.G.num_classes else None  # fakes are drawn for the same classes as the reals
    real = devices.as_layout(real, nets.channels_last)
    all_z = torch.randn(t.batch_size, cfg.model.z_dim, generator=loop.noise)  # the whole batch's, as for the reals
    z = devices.upload(all_z[loop.batches.rows], device)

    def seen_by_D(images: torch.Tensor) -> torch.Tensor:
        return augment(images, loop.policy, loop.augment_p.p, loop.augment_generator, loop.ranks.share)

    penalty_step = step % t.r1_every == 0
    r1_step, r2_step = t.r1_gamma > 0 and penalty_step, t.r2_gamma > 0 and penalty_step
    class_term = t.class_weight > 0 and labels is not None
    real = real.detach().requires_grad_(r1_step)  # gradient penalties need gradients at the images
    with devices.autocast(device, amp):
        fake = G(z, labels)  # (B, C, R, R)
        fake_for_D = fake.detach().requires_grad_(r2_step)
        real_out = (loop.D_penalised if r1_step else D)(seen_by_D(real), labels, classes=class_term)
        real_logits = (real_out[0] if class_term else real_out).float()
        fake_logits = (loop.D_penalised if r2_step else D)(seen_by_D(fake_for_D), labels).float()
        loss_D = d_loss(real_logits, fake_logits)
    regularised = loss_D
    class_loss = torch.zeros((), device=device)
    if class_term:  # D learns to tell the classes of real images apart ...
        class_loss = F.cross_entropy(real_out[1].float(), labels)
        regularised = regularised + t.class_weight * class_loss
    for on, gamma, images, logits, latest in ((r1_step, t.r1_gamma, real, real_logits, "r1"),
                                              (r2_step, t.r2_gamma, fake_for_D, fake_logits, "r2")):
        if on:
            penalty = gradient_penalty(logits, images)
            weight = penalty_weight(gamma, step, t.gamma_decay_steps, t.gamma_final)
            regularised = regularised + penalty * (weight / 2 * t.r1_every)
            setattr(loop, latest, penalty.detach())
    lecam = torch.zeros((), device=device)
    if t.lecam_weight:
        lecam = loop.lecam.penalty(real_logits, fake_logits)
        regularised = regularised + t.lecam_weight * lecam
    nets.opt_D.zero_grad(set_to_none=True)
    regularised.backward()
    nets.opt_D.step()
    loop.augment_p.observe(real_logits)

    nets.D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    with devices.autocast(device, amp):
        fake_out = loop.D_for_G(seen_by_D(fake), labels, classes=class_term)
        # A paired loss scores each fake against a real image, as judged by the D of this step.
        real_now = loop.D_for_G(seen_by_D(real.detach()), labels).float() if t.loss in PAIRED else None
        loss_G = g_loss((fake_out[0] if class_term else fake_out).float(), real_now)
        if class_term:  # ... and G to make images D puts in their class
            loss_G = loss_G + t.class_weight * F.cross_entropy(fake_out[1].float(), labels)
    nets.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    nets.opt_G.step()
    for parameter in nets.d_trainable:
        parameter.requires_grad_(True)

    update_ema(nets.G_ema, nets.G, ema_decay_at(step, t.ema_decay) if t.ema_decay else 0.0)
    probabilities = [torch.sigmoid(logits.detach()).mean() for logits in (real_logits, fake_logits)]
    return torch.stack([loss_D.detach(), loss_G.detach(), *probabilities, loop.r1, loop.r2, lecam.detach(),
                        class_loss.detach(), loop.augment_p.p, loop.augment_p.rt]).float()


def record_dataset(cfg: RunConfig, dataset: ImageDataset, resumed: Checkpoint | None, log) -> None:
    """Write what the data decided (channels, classes, absolute paths) into the config; check a resume's data."""
    if resumed:
        trained_on = resumed.saved_config().data.class_names
        if trained_on != dataset.class_names:
            raise GanError(
                f"the classes in {cfg.data.path} ({', '.join(dataset.class_names)}) differ from the ones "
                f"{resumed.path} was trained on ({', '.join(trained_on)}); resume needs the same data"
            )
        if resumed.state.get("data_fingerprint") != dataset.fingerprint:
            log(f"warning: files in {cfg.data.path} changed since {resumed.path.name} was saved (names, sizes or "
                f"dates); training goes on, but not exactly as the uninterrupted run would have")
    cfg.data.channels = int(dataset.images.shape[1])
    cfg.data.class_names = dataset.class_names
    cfg.data.class_counts = dataset.class_counts
    cfg.data.num_images = len(dataset)
    cfg.resolve_auto(len(dataset), len(dataset.class_names))
    _make_paths_absolute(cfg)


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
    if resume and _continues_its_run(resume):
        lock = RunLock(resume.path.parent)
        if _continues_its_run(resume):  # still, now that no other process can write it
            if not (resume.path.parent / "config.json").is_file():
                log(f"{resume.path.parent} had lost its config.json: written again from the checkpoint")
            return resume.path.parent, lock
        lock.release()
    run_dir = new_run_dir(cfg.train.out, cfg.train.name or Path(cfg.data.path).name)
    if resume:
        why = "is not the newest checkpoint of its run" if is_run_folder(resume.path.parent) else "is not in a run folder"
        log(f"{resume.path} {why}: continuing in a new run folder {run_dir}")
    return run_dir, RunLock(run_dir)


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


def _grid_inputs(cfg: RunConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed noise (and classes) of every fakes grid: 64 images, or one row of 8 per class."""
    classes = min(cfg.num_classes, _GRID_ROWS)
    generator = seeded(cfg.train.seed, _GRID_STREAM)
    if not classes:
        return torch.randn(GRID_SIZE, cfg.model.z_dim, generator=generator).to(device), None
    # The same 8 noise vectors in every row: down a column, only the class changes.
    z = torch.randn(8, cfg.model.z_dim, generator=generator).repeat(classes, 1)
    return z.to(device), torch.arange(classes).repeat_interleave(8).to(device)


def _refresh_ema_stats(nets: Networks, cfg: RunConfig, device: torch.device) -> None:
    generator = seeded(cfg.train.seed, _NORM_STREAM)
    batches = []
    for _ in range(4):
        z = torch.randn(GRID_SIZE, cfg.model.z_dim, generator=generator).to(device)
        labels = torch.randint(cfg.num_classes, (GRID_SIZE,), generator=generator).to(device) if cfg.num_classes else None
        batches.append((z, labels))
    refresh_batchnorm_stats(nets.G_ema, batches)


def _reals_grid(dataset: ImageDataset, cfg: RunConfig) -> torch.Tensor:
    """64 random training images, or (conditional) one row of 8 per class."""
    order = torch.randperm(len(dataset), generator=seeded(cfg.train.seed, _GRID_STREAM))
    if cfg.num_classes:
        labels = dataset.labels[order]
        rows = [order[labels == c] for c in range(min(cfg.num_classes, _GRID_ROWS))]
        pick = torch.cat([row.repeat(-(-8 // len(row)))[:8] for row in rows if len(row)])  # 8 a row, repeating
    else:
        pick = order[:GRID_SIZE]
    return dataset.images[pick].float() / 127.5 - 1.0


def _reported_stats(cfg: RunConfig, policy: tuple[str, ...]) -> set[str]:
    """STATS worth a curve in this run: no flat zero lines for R1 or augmentation when they are off."""
    skipped = set()
    for name, weight in (("Loss/R1", cfg.train.r1_gamma), ("Loss/R2", cfg.train.r2_gamma),
                         ("Loss/LeCam", cfg.train.lecam_weight)):
        if not weight:
            skipped.add(name)
    if not (cfg.train.class_weight and cfg.num_classes):
        skipped.add("Loss/class")
    if not policy:
        skipped |= {"Augment/p", "Augment/rt"}
    return set(STATS) - skipped


def _describe(cfg: RunConfig) -> str:
    """One line on what the automatic settings chose for this data."""
    m, t = cfg.model, cfg.train
    classes = "unconditional"
    if cfg.num_classes:
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


def _train(cfg: RunConfig, resume: Checkpoint | None, device: torch.device, log, ranks: Ranks) -> TrainResult:
    amp = devices.autocast_dtype(device, cfg.train.precision)
    with ranks.main_first():  # the first decodes the images and fills the cache; the others read it
        dataset = load_dataset(cfg.data, log)
    record_dataset(cfg, dataset, resume, log)

    t = cfg.train
    loop = build_loop(cfg, dataset, device, ranks)
    nets = loop.nets
    start = 0
    if resume:
        _restore(resume, loop, cfg, log)
        start = resume.step
    elif t.init_from:
        start_from({"G": nets.G, "D": nets.D, "G_ema": nets.G_ema}, load_source(t.init_from), cfg, log)
    evaluator = training_evaluator(cfg, dataset, device, log, ranks)  # before the run folder: a bad file fails early
    # Only now, with everything checked, does the run touch its folder.
    run_dir, lock = _shared_run_folder(cfg, resume, log, ranks)
    try:
        return _train_in(run_dir, cfg, loop, dataset, evaluator, start, resume, device, amp, log)
    except OSError as error:  # a full disk or lost permissions while writing grids, logs or the config
        raise unwritable(run_dir, error.filename or run_dir, error) from None
    finally:
        if lock:
            lock.release()


def _train_in(run_dir: Path, cfg: RunConfig, loop: Loop, dataset: ImageDataset, evaluator, start: int,
              resume: Checkpoint | None, device: torch.device, amp, log) -> TrainResult:
    t, nets, ranks = cfg.train, loop.nets, loop.ranks
    best_score = best_score_so_far(run_dir, evaluator, t.best_by, log) if evaluator and ranks.main else math.inf
    if ranks.main:
        save_config(run_dir, cfg)
    resuming = f", resuming {resume.path.name} at step {start}" if resume else ""
    log(f"run folder: {run_dir}  (device {device}, {'bf16 autocast' if amp else 'fp32'}{resuming})")
    if ranks.processes > 1:
        log(f"{ranks.processes} processes: batch {t.batch_size} in all, {t.batch_size // ranks.processes} on each")
    log(_describe(cfg))

    grid_z, grid_labels = _grid_inputs(cfg, device)
    ema_stats_step = None

    def refresh_ema_stats(step: int) -> None:
        nonlocal ema_stats_step
        if ema_stats_step != step:  # grids and checkpoints often fall on the same step
            _refresh_ema_stats(nets, cfg, device)
            ema_stats_step = step

    def save_grid(step: int) -> None:
        refresh_ema_stats(step)
        with torch.no_grad():
            tracker.images("Samples/fixed_noise", nets.G_ema(grid_z, grid_labels), step, f"fakes-{step:07d}.png")

    def save(step: int) -> Path:
        refresh_ema_stats(step)
        state = training_state(loop, step, cfg, dataset.fingerprint)
        return save_checkpoint(run_dir, state, cfg.train.keep)

    def evaluate(step: int) -> None:
        nonlocal best_score
        refresh_ema_stats(step)
        scores = evaluator.evaluate(nets.G_ema)  # every process makes its share of the samples
        if not ranks.main:
            return
        note = ""
        if scores[t.best_by] < best_score:
            best_score = scores[t.best_by]
            state = training_state(loop, step, cfg, dataset.fingerprint)
            save_best(run_dir, {**state, "metrics": scores, "evaluation": evaluator.identity, "best_by": t.best_by})
            note = "  (best so far: best.pt)"
        agreement = {f"Agreement/{name}": value for name, value in scores.get("label_agreement_classes", {}).items()
                     if value is not None}
        tracker.metrics(step, {name: scores[key] for name, key in METRICS.items() if key in scores}, note, agreement)
        tracker.restart_clock()

    def flush(window: list[torch.Tensor], step: int) -> None:
        # (steps, len(STATS)), averaged over the processes, so that all of them see a non-finite loss
        values = ranks.average(torch.stack(window)).cpu()  # the only host sync, every log_every steps
        finite = torch.isfinite(values).all(1)
        if not finite.all():
            bad_step = step - len(window) + 1 + int((~finite).nonzero()[0])
            saved = list_checkpoints(run_dir)
            last_good = f"the last good checkpoint is {saved[-1]}" if saved else "no checkpoint was saved yet"
            raise TrainingDiverged(
                f"the loss became non-finite (NaN or inf) at step {bad_step}; stopping. {last_good}. "
                f"Resume it with lower learning rates (--d-lr, --g-lr) or --precision fp32."
            )
        if ranks.main:
            stats = {name: value for name, value in zip(STATS, values.mean(0).tolist()) if name in reported}
            tracker.scalars(step, {**stats, "LR/G": cfg.train.g_lr, "LR/D": cfg.train.d_lr})
        window.clear()

    reported = _reported_stats(cfg, loop.policy)
    tracker = Tracker(run_dir, t.steps, start, t.batch_size, t.tensorboard, log) if ranks.main else None
    if evaluator and cfg.num_classes and ranks.main:  # trained at the first evaluation, kept in the run
        evaluator.make_judge = lambda: run_judge(run_dir, cfg, lambda: dataset, device, tracker.message)
    step, checkpoint, window = start, None, []
    try:
        if ranks.main and not (run_dir / "reals.png").exists():
            tracker.images("Samples/reals", _reals_grid(dataset, cfg), start, "reals.png")
        if start == 0 and ranks.main:
            save_grid(0)
        if tracker:
            tracker.restart_clock()
        with StopSignals() as stop:
            for step in range(start + 1, t.steps + 1):
                window.append(train_step(loop, cfg, device, amp, step))
                # Read once (a signal arriving mid-save is handled after the next step). Processes agree on it at
                # the host syncs they share, every --log-every steps: agreeing every step would sync every step.
                stopping = stop.requested if ranks.processes == 1 else (
                    step % t.log_every == 0 and ranks.any(stop.requested))
                if stopping and tracker:
                    tracker.message(f"stopping at step {step}: saving a checkpoint (Ctrl-C again aborts)")
                last = step == t.steps or stopping
                if last or step % t.log_every == 0 or step % t.checkpoint_every == 0:
                    flush(window, step)
                if ranks.main and (last or step % t.image_every == 0):
                    save_grid(step)
                if ranks.main and (last or step % t.checkpoint_every == 0):
                    checkpoint = save(step)
                # After the checkpoint, so that a failing evaluation never costs training steps.
                if evaluator and not stopping and (step == t.steps or step % t.eval_every == 0):
                    evaluate(step)
                if stopping:
                    break
    finally:
        if tracker:
            tracker.close()
    interrupted = step < t.steps
    if interrupted:
        log(f"stopped at step {step}; checkpoint {checkpoint}. Continue with: gan train --resume {run_dir}")
    return TrainResult(run_dir, step, checkpoint, interrupted)
