"""The training state: the networks, their optimizers, the data stream and every random stream and moving average a
training step reads and advances; so, everything a checkpoint holds.

A field marked `saved()` goes into checkpoints under its own name and comes back on resume, whatever its kind
(a module, an optimizer, anything with state_dict / load_state_dict, a random generator or a tensor): adding a
piece of state is one field here, plus its use.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

from gan import device as devices
from gan.batches import RealBatches
from gan.config import RunConfig, parse_policy
from gan.data import ImageDataset
from gan.diffaugment import AugmentProbability
from gan.distributed import SINGLE, Ranks
from gan.losses import LeCam
from gan.models import discriminator, generator
from gan.streams import AUGMENT, DATA, NOISE, seeded
from gan.transfer import freeze_blocks

# Independent random streams derived from --seed; all of training's randomness comes from these generators.


def saved(**options):
    """A field that checkpoints hold, under its name."""
    return field(metadata={"saved": True}, **options)


def zeros() -> dataclasses.Field:
    """A saved scalar tensor that starts at zero on the training device (see TrainingState.__post_init__)."""
    return saved(default=None)


@dataclass
class Networks:
    G: nn.Module = saved()
    D: nn.Module = saved()
    G_ema: nn.Module = saved()  # moving average of G: what grids and exports use
    opt_G: torch.optim.Optimizer = saved()
    opt_D: torch.optim.Optimizer = saved()
    d_trainable: list[nn.Parameter] = field(default_factory=list)  # D's parameters less those --freeze-d holds
    channels_last: bool = False  # the networks' memory layout, which real batches must match


@dataclass
class TrainingState:
    nets: Networks
    # nets.G and nets.D as training calls them: compiled, and with several processes under DDP
    G: nn.Module
    D: nn.Module  # for D's step
    D_penalised: nn.Module  # for D's steps with a gradient penalty, whose double backward compiled code cannot take
    D_for_G: nn.Module  # for G's step, which needs no gradients for D (so no DDP)
    ranks: Ranks
    policy: tuple[str, ...]
    device: torch.device
    batches: RealBatches = saved()
    noise: torch.Generator = saved()  # CPU: the same noise on every device
    augment_generator: torch.Generator = saved()  # on the training device, where augmentation runs
    augment_p: AugmentProbability = saved()
    lecam: LeCam = saved()
    r1: torch.Tensor = zeros()  # the latest R1 and R2 penalties (they are only computed every --r1-every steps)
    r2: torch.Tensor = zeros()
    # --patience's count: evaluations in a row that improved neither --best-by's score nor the label agreement, and
    # the best agreement so far. Host-side (read only at evaluations), in float64 to compare exactly with the scores.
    stale_evaluations: torch.Tensor = saved(default_factory=lambda: torch.tensor(0))
    best_agreement: torch.Tensor = saved(default_factory=lambda: torch.tensor(0.0, dtype=torch.float64))

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.metadata.get("saved") and f.default is None and getattr(self, f.name) is None:
                setattr(self, f.name, torch.zeros((), device=self.device))

    def _saved(self) -> Iterator[tuple[str, object, object]]:
        """(checkpoint key, owner, attribute) of every saved field, the networks' first."""
        for owner in (self.nets, self):
            for f in dataclasses.fields(owner):
                if f.metadata.get("saved"):
                    yield f.name, owner, f.name

    def state_dict(self) -> dict:
        """Plain tensors and dicts, loadable with weights_only=True."""
        return {key: _state_of(getattr(owner, name)) for key, owner, name in self._saved()}

    def load_state_dict(self, state: dict, log: Callable[[str], None]) -> None:
        """Restore every saved field; one an older checkpoint format lacks keeps its fresh value."""
        for key, owner, name in self._saved():
            if key in state:
                setattr(owner, name, _restored(getattr(owner, name), state[key], key, log))


def _state_of(value):
    if isinstance(value, torch.Generator):
        return value.get_state()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return value.state_dict()


def _restored(value, saved_state, key: str, log: Callable[[str], None]):
    """`value` with `saved_state` loaded into it (the same object, or a tensor's new value)."""
    if isinstance(value, torch.Tensor):
        return saved_state.to(value.device)
    if isinstance(value, torch.Generator):
        # A generator's state is a CPU byte tensor whatever its device; a checkpoint from another device type
        # cannot continue the stream, so it starts a fresh one (only exactness across devices is lost).
        try:
            value.set_state(saved_state)
        except RuntimeError:
            log(f"warning: the checkpoint's {key} random state is from another device type; continuing with a fresh "
                f"one (the run is no longer an exact continuation)")
        return value
    if isinstance(value, torch.optim.Optimizer):
        # Settings come from this run: learning rates may change on resume, and `fused` follows the device (it must
        # be set before loading, which places the step counters by it).
        now = {name: value.param_groups[0][name] for name in ("lr", "betas", "fused")}
        value.load_state_dict({**saved_state, "param_groups": [{**group, **now}
                                                                for group in saved_state["param_groups"]]})
        devices.match_parameter_layouts(value)
        return value
    value.load_state_dict(saved_state)
    return value


def build_networks(cfg: RunConfig, device: torch.device) -> Networks:
    """Fresh DCGAN networks (initialised from --seed) and their Adam optimizers on `device`."""
    shape = (cfg.data.resolution, cfg.data.channels)
    layout = devices.channels_last(device, cfg.train.compile)
    classes = cfg.num_classes
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's RNG
        torch.manual_seed(cfg.train.seed)
        G = devices.place(generator(cfg.model, *shape, classes), device, layout)
        D = devices.place(discriminator(cfg.model, *shape, classes), device, layout)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    t = cfg.train
    d_trainable = freeze_blocks(D, t.freeze_d, cfg.data.resolution)
    opt_G = torch.optim.Adam(G.parameters(), t.g_lr, (t.beta1, t.beta2), **devices.adam_options(device))
    opt_D = torch.optim.Adam(D.parameters(), t.d_lr, (t.beta1, t.beta2), **devices.adam_options(device))
    return Networks(G, D, G_ema, opt_G, opt_D, d_trainable, layout)


def build_state(cfg: RunConfig, dataset: ImageDataset, device: torch.device, ranks: Ranks = SINGLE) -> TrainingState:
    """A fresh training state for `cfg` (resolved against `dataset`): networks, batches and random streams."""
    t = cfg.train
    nets = build_networks(cfg, device)
    adaptive = t.augment_p == "auto"
    D_synced = ranks.wrap(nets.D)
    D = devices.maybe_compile(D_synced, t.compile, device, t.compile_mode)
    return TrainingState(
        nets=nets,
        G=devices.maybe_compile(ranks.wrap(nets.G), t.compile, device, t.compile_mode),
        D=D,
        D_penalised=D_synced,
        D_for_G=D if ranks.processes == 1 else devices.maybe_compile(nets.D, t.compile, device, t.compile_mode),
        ranks=ranks,
        policy=parse_policy(t.augment),
        device=device,
        batches=RealBatches(dataset, t.batch_size, cfg.data.mirror, cfg.data.class_balance,
                            seeded(t.seed, DATA), device, ranks.rows(t.batch_size)),
        noise=seeded(t.seed, NOISE),
        augment_generator=seeded(t.seed, AUGMENT, device),
        augment_p=AugmentProbability(0.0 if adaptive else float(t.augment_p), adaptive, t.augment_target,
                                     t.batch_size, device, average=ranks.average),
        lecam=LeCam(device, average=ranks.average),
    )
