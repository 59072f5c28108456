"""The training loop: `train(cfg)` runs (or resumes) one GAN run in its own folder and says where it ended."""

from __future__ import annotations

import copy
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gan import device as devices
from gan.checkpoint import Checkpoint, list_checkpoints, new_run_dir, save_checkpoint, save_config
from gan.config import RunConfig, shape_differences, to_dict
from gan.data import ImageDataset, RealBatches, load_dataset
from gan.errors import GanError
from gan.losses import d_loss, g_loss
from gan.models import Discriminator, Generator, ema_decay_at, refresh_batchnorm_stats, update_ema
from gan.tracking import GRID_SIZE, Tracker

STATS = ("Loss/D", "Loss/G", "D/real", "D/fake")  # what train_step returns, in this order

# Independent random streams derived from --seed; all of training's randomness comes from these generators.
_DATA_STREAM, _NOISE_STREAM, _GRID_STREAM, _NORM_STREAM = 0, 1, 2, 3


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
    channels_last: bool  # the networks' memory layout, which real batches must match


def seeded(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 4 + stream)


def build_networks(cfg: RunConfig, device: torch.device) -> Networks:
    """Fresh DCGAN networks (initialised from --seed) and their Adam optimizers on `device`."""
    shape = (cfg.data.resolution, cfg.data.channels)
    layout = devices.channels_last(device, cfg.train.compile)
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's RNG
        torch.manual_seed(cfg.train.seed)
        G = devices.place(Generator(cfg.model, *shape), device, layout)
        D = devices.place(Discriminator(cfg.model, *shape), device, layout)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    t = cfg.train
    opt_G = torch.optim.Adam(G.parameters(), t.g_lr, (t.beta1, t.beta2), **devices.adam_options(device))
    opt_D = torch.optim.Adam(D.parameters(), t.d_lr, (t.beta1, t.beta2), **devices.adam_options(device))
    return Networks(G, D, G_ema, opt_G, opt_D, layout)


def training_state(nets: Networks, batches: RealBatches, noise: torch.Generator, step: int, cfg: RunConfig,
                   data_fingerprint: str) -> dict:
    """Everything a resume needs, as plain tensors and dicts (loadable with weights_only=True)."""
    return {
        "step": step,
        "config": to_dict(cfg),
        "data_fingerprint": data_fingerprint,
        "G": nets.G.state_dict(),
        "D": nets.D.state_dict(),
        "G_ema": nets.G_ema.state_dict(),
        "opt_G": nets.opt_G.state_dict(),
        "opt_D": nets.opt_D.state_dict(),
        "batches": batches.state_dict(),
        "noise": noise.get_state(),
    }


def _restore(checkpoint: Checkpoint, nets: Networks, batches: RealBatches, noise: torch.Generator, cfg: RunConfig):
    state = checkpoint.state
    for name in ("G", "D", "G_ema"):
        getattr(nets, name).load_state_dict(state[name])
    for opt, saved, lr in ((nets.opt_G, state["opt_G"], cfg.train.g_lr), (nets.opt_D, state["opt_D"], cfg.train.d_lr)):
        # Settings come from this run: learning rates may change on resume, and `fused` follows the device
        # (it must be set before loading, which places the step counters by it).
        now = {"lr": lr, "betas": (cfg.train.beta1, cfg.train.beta2), "fused": opt.param_groups[0]["fused"]}
        opt.load_state_dict({**saved, "param_groups": [{**group, **now} for group in saved["param_groups"]]})
        _match_parameter_layouts(opt)
    batches.load_state_dict(state["batches"])
    noise.set_state(state["noise"])


def _match_parameter_layouts(opt: torch.optim.Optimizer) -> None:
    """Give moment buffers their parameter's memory layout: a CPU checkpoint's are contiguous, a CUDA run's
    parameters channels_last, and fused Adam refuses the mix."""
    for param, state in opt.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape:
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def train_step(nets: Networks, G: nn.Module, D: nn.Module, batches: RealBatches, noise: torch.Generator,
               cfg: RunConfig, device: torch.device, amp: torch.dtype | None, step: int) -> torch.Tensor:
    """One discriminator step and one generator step on the same fakes; returns STATS as a device tensor.

    `G` and `D` are the (possibly compiled) callables for `nets.G` / `nets.D`.
    """
    real, _ = next(batches)
    real = devices.as_layout(real, nets.channels_last)
    z = torch.randn(real.shape[0], cfg.model.z_dim, generator=noise).to(device)
    with devices.autocast(device, amp):
        fake = G(z)  # (B, C, R, R)
        real_logits, fake_logits = D(real), D(fake.detach())
        loss_D = d_loss(real_logits.float(), fake_logits.float())
    nets.opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    nets.opt_D.step()

    nets.D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    with devices.autocast(device, amp):
        loss_G = g_loss(D(fake).float())
    nets.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    nets.opt_G.step()
    nets.D.requires_grad_(True)

    update_ema(nets.G_ema, nets.G, ema_decay_at(step, cfg.train.ema_decay) if cfg.train.ema_decay else 0.0)
    probabilities = [torch.sigmoid(logits.detach().float()).mean() for logits in (real_logits, fake_logits)]
    return torch.stack([loss_D.detach().float(), loss_G.detach().float(), *probabilities])


class StopSignals:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step and save; a second Ctrl-C aborts at once.

    The handler only sets a flag: printing from a signal handler can collide with the loop's own output.
    """

    def __init__(self):
        self.requested = False
        self.previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _record_dataset(cfg: RunConfig, dataset: ImageDataset, resumed: Checkpoint | None, log) -> None:
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
    # Absolute, so that `--resume` works from any working directory.
    cfg.data.path = str(Path(cfg.data.path).expanduser().resolve())
    if cfg.data.cache_dir:
        cfg.data.cache_dir = str(Path(cfg.data.cache_dir).expanduser().resolve())


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


def _run_folder(cfg: RunConfig, resume: Checkpoint | None, log) -> Path:
    """A resume continues in its run folder when it starts from that run's newest checkpoint; a resume from an
    older or a stray checkpoint gets a new folder, so it never overwrites or mixes with later work."""
    if resume:
        folder = resume.path.parent
        saved = list_checkpoints(folder)
        if (folder / "config.json").exists() and saved and saved[-1].resolve() == resume.path.resolve():
            return folder
    run_dir = new_run_dir(cfg.train.out, cfg.train.name or Path(cfg.data.path).name)
    if resume:
        log(f"{resume.path} is not the newest checkpoint of its run: continuing in a new run folder {run_dir}")
    return run_dir


def _grid_noise(cfg: RunConfig, device: torch.device) -> torch.Tensor:
    return torch.randn(GRID_SIZE, cfg.model.z_dim, generator=seeded(cfg.train.seed, _GRID_STREAM)).to(device)


def _refresh_ema_stats(nets: Networks, cfg: RunConfig, device: torch.device) -> None:
    generator = seeded(cfg.train.seed, _NORM_STREAM)
    batches = [torch.randn(GRID_SIZE, cfg.model.z_dim, generator=generator) for _ in range(4)]
    refresh_batchnorm_stats(nets.G_ema, (z.to(device) for z in batches))


def _reals_grid(dataset: ImageDataset, seed: int) -> torch.Tensor:
    pick = torch.randperm(len(dataset), generator=seeded(seed, _GRID_STREAM))[:GRID_SIZE]
    return dataset.images[pick].float() / 127.5 - 1.0


def train(cfg: RunConfig, resume: Checkpoint | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train a new run (or carry `resume` on) to `cfg.train.steps`, writing everything into the run folder."""
    cfg.validate()
    if resume:
        _check_resumable(resume, cfg)
    device = devices.pick_device(cfg.train.device)
    amp = devices.autocast_dtype(device, cfg.train.precision)
    dataset = load_dataset(cfg.data, log)
    _record_dataset(cfg, dataset, resume, log)

    nets = build_networks(cfg, device)
    batches = RealBatches(dataset, cfg.train.batch_size, cfg.data.mirror, seeded(cfg.train.seed, _DATA_STREAM), device)
    noise = seeded(cfg.train.seed, _NOISE_STREAM)
    start = 0
    if resume:
        _restore(resume, nets, batches, noise, cfg)
        start = resume.step
    G = devices.maybe_compile(nets.G, cfg.train.compile, device)
    D = devices.maybe_compile(nets.D, cfg.train.compile, device)
    # Only now, with everything checked, does the run touch its folder.
    run_dir = _run_folder(cfg, resume, log)
    save_config(run_dir, cfg)
    resuming = f", resuming {resume.path.name} at step {start}" if resume else ""
    log(f"run folder: {run_dir}  (device {device}, {'bf16 autocast' if amp else 'fp32'}{resuming})")

    grid_noise = _grid_noise(cfg, device)
    ema_stats_step = None

    def refresh_ema_stats(step: int) -> None:
        nonlocal ema_stats_step
        if ema_stats_step != step:  # grids and checkpoints often fall on the same step
            _refresh_ema_stats(nets, cfg, device)
            ema_stats_step = step

    def save_grid(step: int) -> None:
        refresh_ema_stats(step)
        with torch.no_grad():
            tracker.images("Samples/fixed_noise", nets.G_ema(grid_noise), step, f"fakes-{step:07d}.png")

    def save(step: int) -> Path:
        refresh_ema_stats(step)
        state = training_state(nets, batches, noise, step, cfg, dataset.fingerprint)
        return save_checkpoint(run_dir, state, cfg.train.keep)

    def flush(window: list[torch.Tensor], step: int) -> None:
        values = torch.stack(window).cpu()  # (steps, len(STATS)); the only host sync, every log_every steps
        finite = torch.isfinite(values).all(1)
        if not finite.all():
            bad_step = step - len(window) + 1 + int((~finite).nonzero()[0])
            saved = list_checkpoints(run_dir)
            last_good = f"the last good checkpoint is {saved[-1]}" if saved else "no checkpoint was saved yet"
            raise TrainingDiverged(
                f"the loss became non-finite (NaN or inf) at step {bad_step}; stopping. {last_good}. "
                f"Resume it with lower learning rates (--d-lr, --g-lr) or --precision fp32."
            )
        stats = dict(zip(STATS, values.mean(0).tolist()))
        tracker.scalars(step, {**stats, "LR/G": cfg.train.g_lr, "LR/D": cfg.train.d_lr})
        window.clear()

    tracker = Tracker(run_dir, cfg.train.steps, start, cfg.train.batch_size, cfg.train.tensorboard, log)
    t = cfg.train
    step, checkpoint, window = start, None, []
    try:
        if not (run_dir / "reals.png").exists():
            tracker.images("Samples/reals", _reals_grid(dataset, t.seed), start, "reals.png")
        if start == 0:
            save_grid(0)
        tracker.restart_clock()
        with StopSignals() as stop:
            for step in range(start + 1, t.steps + 1):
                window.append(train_step(nets, G, D, batches, noise, cfg, device, amp, step))
                stopping = stop.requested  # read once: a signal arriving mid-save is handled after the next step
                if stopping:
                    tracker.message(f"stopping at step {step}: saving a checkpoint (Ctrl-C again aborts)")
                last = step == t.steps or stopping
                if last or step % t.log_every == 0 or step % t.checkpoint_every == 0:
                    flush(window, step)
                if last or step % t.image_every == 0:
                    save_grid(step)
                if last or step % t.checkpoint_every == 0:
                    checkpoint = save(step)
                if stopping:
                    break
    finally:
        tracker.close()
    interrupted = step < t.steps
    if interrupted:
        log(f"stopped at step {step}; checkpoint {checkpoint}. Continue with: gan train --resume {run_dir}")
    return TrainResult(run_dir, step, checkpoint, interrupted)
