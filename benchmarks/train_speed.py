"""Training speed, side by side in one process on one folder: the PyTorch DCGAN example's loop (re-implemented here
from its description), our training step, the compute floor of our networks, and each data path alone.

    python benchmarks/train_speed.py --data data/emoji [--steps 8 --repeats 3] [--variants] [--profile] [--labels]
                                     [--device cuda] [--resolution 128]

Same architecture for all (DCGAN at 64 px, ngf = ndf = 64, z 100, batch 64, BatchNorm in D, unconditional), so the
rows differ only in the data path, the loss and what runs around the networks. At --resolution above 64 our
networks gain a layer per doubling; the example's loop is only defined at 64 px and is left out there (its
DataLoader is still timed, resizing to that resolution).
- reference: ImageFolder-style PIL decode + Resize/CenterCrop/ToTensor/Normalize in DataLoader workers every
  step, Sigmoid + BCELoss, and the example's per-step .item() reads.
- ours: `gan.step.train_step` on our data path (decoded once, batches on the device), losses read every
  --log-every steps as `gan train` does; augmentation and EMA off, then on (translation,cutout,color, adaptive p).
- floor: our G and D doing forward, backward and Adam steps on random tensors already on the device.
- data: images/s the reference DataLoader delivers with no model, and what ours delivers (on the device,
  augmented in the second row).
`--variants` also times the floor without channels_last and with torch.compile (each in fp32 and bf16);
`--profile` prints torch.profiler's table of where our step spends its time.
`--graphs` instead times our step eager, compiled, and compiled as CUDA graphs (--compile-mode reduce-overhead),
against the compute floor: the floor's images/s at 16 times the batch, where kernel launches no longer count.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import default_loader

from gan import device as devices
from gan.diffaugment import diff_augment
from gan.config import DEFAULT_POLICY, RunConfig
from gan.data import load_dataset
from gan.folders import check_folder, scan_folder
from gan.losses import LOSSES
from gan.state import build_networks, build_state
from gan.step import stacked, train_step
from gan.train import record_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import describe_machine, measure_turns, print_table  # noqa: E402

REFERENCE_RESOLUTION, WIDTH, Z_DIM, BATCH = 64, 64, 100, 64  # the example's networks are 64 px only


# --- the reference: the PyTorch DCGAN example, re-implemented from its description -----------------------------------


class ReferenceImages(Dataset):
    """What ImageFolder does per item: open with PIL, convert to RGB, transform."""

    def __init__(self, files: list[Path], transform):
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return self.transform(default_loader(str(self.files[i]))), 0


def reference_loader(data: Path, workers: int, resolution: int = REFERENCE_RESOLUTION) -> DataLoader:
    files, _, _ = scan_folder(data, log=lambda _: None)
    transform = T.Compose([T.Resize(resolution), T.CenterCrop(resolution), T.ToTensor(),
                           T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    return DataLoader(ReferenceImages(files, transform), batch_size=BATCH, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0)


def endless(loader: DataLoader):
    while True:
        yield from loader


def reference_networks() -> tuple[nn.Module, nn.Module]:
    g, d = WIDTH, WIDTH
    G = nn.Sequential(
        nn.ConvTranspose2d(Z_DIM, g * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(g * 8), nn.ReLU(True),
        nn.ConvTranspose2d(g * 8, g * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(g * 4), nn.ReLU(True),
        nn.ConvTranspose2d(g * 4, g * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(g * 2), nn.ReLU(True),
        nn.ConvTranspose2d(g * 2, g, 4, 2, 1, bias=False), nn.BatchNorm2d(g), nn.ReLU(True),
        nn.ConvTranspose2d(g, 3, 4, 2, 1, bias=False), nn.Tanh(),
    )
    D = nn.Sequential(
        nn.Conv2d(3, d, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(d, d * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(d * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(d * 2, d * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(d * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(d * 4, d * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(d * 8), nn.LeakyReLU(0.2, True),
        nn.Conv2d(d * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )
    for module in [*G.modules(), *D.modules()]:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)
    return G, D


def reference_loop(data: Path, workers: int, device: torch.device):
    """run(steps) -> images: the example's training iteration, data loading included."""
    G, D = (net.to(device) for net in reference_networks())
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    criterion = nn.BCELoss()
    batches = endless(reference_loader(data, workers))

    def run(steps: int) -> int:
        images = 0
        for _ in range(steps):
            real = next(batches)[0].to(device)
            b = real.size(0)
            ones, zeros = torch.full((b,), 1.0, device=device), torch.full((b,), 0.0, device=device)
            D.zero_grad()
            output = D(real).view(-1)
            criterion(output, ones).backward()
            output.mean().item()  # D(x), as the example reads it every step
            fake = G(torch.randn(b, Z_DIM, 1, 1, device=device))
            output = D(fake.detach()).view(-1)
            criterion(output, zeros).backward()
            output.mean().item()
            opt_D.step()
            G.zero_grad()
            output = D(fake).view(-1)
            criterion(output, ones).backward()
            output.mean().item()
            opt_G.step()
            images += b
        return images

    return run


def reference_data(data: Path, workers: int, resolution: int):
    batches = endless(reference_loader(data, workers, resolution))

    def run(steps: int) -> int:
        return sum(next(batches)[0].shape[0] for _ in range(steps))

    return run


# --- ours ----------------------------------------------------------------------------------------------------------


def our_config(data: Path, device: str, precision: str, augmented: bool, compile: bool = False,
               resolution: int = REFERENCE_RESOLUTION) -> RunConfig:
    """Our training at the reference's architecture; augmentation and EMA off or on."""
    cfg = RunConfig()
    cfg.data.path = str(data)
    cfg.data.resolution = resolution
    cfg.data.cache = True
    cfg.model = dataclasses.replace(cfg.model, z_dim=Z_DIM, g_channels=WIDTH, d_channels=WIDTH, conditional="off",
                                    spectral_norm="off")
    t = cfg.train
    t.batch_size, t.device, t.precision, t.compile = BATCH, device, precision, compile
    t.loss, t.r1_gamma = "nonsaturating", 0.0
    t.augment = DEFAULT_POLICY if augmented else "none"
    t.augment_p = "auto" if augmented else "0"
    t.ema_decay = 0.999 if augmented else 0.0
    return cfg


def our_loop(cfg: RunConfig, dataset, device: torch.device):
    """run(steps) -> images: `train_step`, with the stats read back every --log-every steps as `gan train` does."""
    state = build_state(cfg, dataset, device)
    amp = devices.autocast_dtype(device, cfg.train.precision)
    step = [0]

    def run(steps: int) -> int:
        window = []
        for _ in range(steps):
            step[0] += 1
            window.append(train_step(state, cfg, amp, step[0]))
            if len(window) == cfg.train.log_every:
                stacked(window)[1].cpu()
                window.clear()
        if window:
            stacked(window)[1].cpu()
        return steps * cfg.train.batch_size

    return run, state


def our_data(state, augmented: bool):
    def run(steps: int) -> int:
        for _ in range(steps):
            real, _ = next(state.batches)
            if augmented:
                diff_augment(real, state.policy, state.augment_p.p, state.augment_generator)
        return steps * state.batches.batch_size

    return run


def floor_loop(cfg: RunConfig, device: torch.device, channels_last: bool | None = None, batch: int = BATCH):
    """run(steps) -> images: our G and D, forward + backward + Adam on random tensors already on the device, in
    the memory layout training gives them (or the one `channels_last` asks for)."""
    nets = build_networks(cfg, device)
    layout = nets.channels_last if channels_last is None else channels_last
    for net in (nets.G, nets.D):
        net.to(memory_format=torch.channels_last if layout else torch.contiguous_format)
    G = devices.maybe_compile(nets.G, cfg.train.compile, device)
    D = devices.maybe_compile(nets.D, cfg.train.compile, device)
    amp = devices.autocast_dtype(device, cfg.train.precision)
    d_loss, g_loss = LOSSES[cfg.train.loss]
    size = cfg.data.resolution
    real = devices.as_layout(torch.randn(batch, 3, size, size, device=device), layout)
    z = torch.randn(batch, Z_DIM, device=device)

    def run(steps: int) -> int:
        for _ in range(steps):
            with devices.autocast(device, amp):
                fake = G(z)
                loss_D = d_loss(D(real).float(), D(fake.detach()).float())
            nets.opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            nets.opt_D.step()
            nets.D.requires_grad_(False)
            with devices.autocast(device, amp):
                loss_G = g_loss(D(fake).float())
            nets.opt_G.zero_grad(set_to_none=True)
            loss_G.backward()
            nets.opt_G.step()
            nets.D.requires_grad_(True)
        return steps * batch

    return run


def profile_step(cfg: RunConfig, dataset, device: torch.device, steps: int) -> None:
    """Where one of our steps spends its time: torch.profiler's table by self time."""
    run, _ = our_loop(cfg, dataset, device)
    run(2)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        run(steps)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\nprofile of {steps} steps ({cfg.train.precision}, augment {cfg.train.augment}):")
    print(profiler.key_averages().table(sort_by=sort, row_limit=18))


LOSS_CASES = {  # name: training settings over the defaults' (augmentation and EMA on)
    "defaults (nonsaturating)": {},
    "rpgan": {"loss": "rpgan"},
    "R1, every 16 steps": {"r1_gamma": 0.1},
    "R1 + R2, every 16 steps": {"r1_gamma": 0.1, "r2_gamma": 0.1},
    "R1 + R2, every step": {"r1_gamma": 0.1, "r2_gamma": 0.1, "r1_every": 1},
    "LeCam": {"lecam_weight": 0.3},
    "rpgan + R1 + R2 + LeCam, every 16 steps": {"loss": "rpgan", "r1_gamma": 0.1, "r2_gamma": 0.1, "lecam_weight": 0.3},
}


def time_losses(base: RunConfig, dataset, device: torch.device, args) -> None:
    """Our step with each loss and regulariser, in turns; the cost of each against the defaults' step."""
    def case(settings: dict):
        cfg = copy.deepcopy(base)
        for name, value in settings.items():
            setattr(cfg.train, name, value)
        return our_loop(cfg, dataset, device)[0]

    time_against_first({name: lambda s=settings: case(s) for name, settings in LOSS_CASES.items()}, device, args)


def time_against_first(cases: dict, device: torch.device, args) -> None:
    """Our step in each case (name: a function making its run), in turns; each one's cost against the first's."""
    rows = measure_turns([(name, make, args.steps, args.warmup) for name, make in cases.items()], device,
                         args.repeats)
    print()
    print_table(rows)
    baseline = rows[0].median
    for row in rows[1:]:
        print(f"{row.name}: {baseline / row.median - 1:+.0%} time per step")


LABEL_CASES = {  # name: (section, field) settings over `gan train`'s own defaults on class folders
    "conditional, no class term (the earlier default)": {("train", "class_weight"): 0.0},
    "conditional, class term 1 (the default)": {("train", "class_weight"): 1.0},
    "transitional conditioning": {("train", "class_weight"): 1.0, ("train", "class_blend_steps"): 1000},
    "per-class G and D": {("model", "conditional"): "per-class", ("train", "class_weight"): 0.0},
    "per-class G and D, widths 32": {("model", "conditional"): "per-class", ("train", "class_weight"): 0.0,
                                     ("model", "g_channels"): 32, ("model", "d_channels"): 32},
}


def time_label_cases(data: Path, dataset, device: torch.device, args) -> None:
    """`gan train`'s defaults on class folders with each way of holding labels, in turns; the cost of each against
    the earlier default's step."""
    def case(settings: dict):
        cfg = RunConfig()
        cfg.data.path, cfg.data.resolution, cfg.train.device = str(data), args.resolution, args.device
        for (section, name), value in settings.items():
            setattr(getattr(cfg, section), name, value)
        record_dataset(cfg, dataset, None, log=lambda _: None)
        return our_loop(cfg, dataset, device)[0]

    time_against_first({name: lambda s=settings: case(s) for name, settings in LABEL_CASES.items()}, device, args)


def time_graphs(base: RunConfig, dataset, device: torch.device, args) -> None:
    """Our step (augment + EMA) eager, compiled and as CUDA graphs, against the compute floor."""
    def ours(compile: bool, mode: str = "default"):
        cfg = copy.deepcopy(base)
        cfg.train.compile, cfg.train.compile_mode = compile, mode
        return our_loop(cfg, dataset, device)[0]

    cases = [("ours, eager", lambda: ours(False)), ("ours, --compile", lambda: ours(True)),
             ("ours, --compile --compile-mode reduce-overhead", lambda: ours(True, "reduce-overhead")),
             (f"compute floor (batch {16 * BATCH})", lambda: floor_loop(base, device, batch=16 * BATCH))]
    rows = measure_turns([(name, make, args.steps, args.warmup) for name, make in cases], device, args.repeats)
    print()
    print_table(rows)
    floor = rows[-1].median
    for row in rows[:-1]:
        print(f"{row.name}: {row.median / floor:.0%} of the compute floor")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/emoji", help="image folder (default: the bundled emoji)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the repeats")
    parser.add_argument("--workers", type=int, default=2, help="the reference DataLoader's workers (the example: 2)")
    parser.add_argument("--resolution", type=int, default=REFERENCE_RESOLUTION,
                        help="64 (default) or more; the DCGAN example's loop is timed at 64 px only")
    parser.add_argument("--variants", action="store_true",
                        help="also time the floor without channels_last and with torch.compile")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table for our step")
    parser.add_argument("--graphs", action="store_true",
                        help="instead: our step eager, compiled and as CUDA graphs, against the compute floor")
    parser.add_argument("--labels", action="store_true",
                        help="instead: what each way of holding labels costs per step (gan train's defaults on class "
                             "folders), against the earlier default's step")
    parser.add_argument("--losses", action="store_true",
                        help="instead: what each loss and regulariser costs per step, against the defaults' step "
                             "(use --steps 16, so that every repeat holds one lazy R1/R2 step)")
    args = parser.parse_args(argv)

    data = check_folder(args.data)
    device = devices.pick_device(args.device)
    default_precision = "bf16" if devices.autocast_dtype(device, "auto") else "fp32"
    resolution = args.resolution
    with_reference_loop = resolution == REFERENCE_RESOLUTION
    print(f"{describe_machine(device)}; {resolution} px, batch {BATCH}, {args.steps} steps x {args.repeats} repeats "
          f"after {args.warmup}; default precision here: {default_precision}")

    def configured(precision: str, augmented: bool, compile: bool = False) -> RunConfig:
        cfg = our_config(data, args.device, precision, augmented, compile, resolution)
        record_dataset(cfg, dataset, None, log=lambda _: None)
        return cfg

    dataset = load_dataset(our_config(data, args.device, "fp32", False, resolution=resolution).data, lambda _: None)
    if args.losses:
        time_losses(configured(default_precision, True), dataset, device, args)
        return
    if args.labels:
        time_label_cases(data, dataset, device, args)
        return
    if args.graphs:
        time_graphs(configured(default_precision, True), dataset, device, args)
        return
    precisions = ["fp32"] + ([default_precision] if default_precision != "fp32" else [])
    cases = [("reference DCGAN loop", lambda: reference_loop(data, args.workers, device))] if with_reference_loop else []
    states = {}  # augmented -> the training state of our latest case, for the data rows

    def ours(precision: str, augmented: bool):
        run, states[augmented] = our_loop(configured(precision, augmented), dataset, device)
        return run

    for precision in precisions:
        cases.append((f"floor, {precision}", lambda p=precision: floor_loop(configured(p, False), device)))
        for augmented in (False, True):
            label = "augment + EMA" if augmented else "no augment, no EMA"
            cases.append((f"ours, {precision}, {label}", lambda p=precision, a=augmented: ours(p, a)))
    if args.variants:
        for name, precision, layout, compile in (("fp32, not channels_last", "fp32", False, False),
                                                 ("bf16, not channels_last", "bf16", False, False),
                                                 ("fp32 + compile", "fp32", None, True), ("bf16 + compile", "bf16", None, True)):
            cases.append((f"floor variant: {name}",
                          lambda p=precision, l=layout, c=compile: floor_loop(configured(p, False, c), device, l)))
    # The networks' cases take turns, so that a shared machine's drift affects them alike; then the data paths.
    rows = measure_turns([(name, make, args.steps, args.warmup) for name, make in cases], device, args.repeats)
    data_steps, data_warmup = args.steps * 25, args.warmup * 10  # batches without a model are quick
    rows += measure_turns([
        ("data: reference DataLoader", lambda: reference_data(data, args.workers, resolution), data_steps, data_warmup),
        ("data: ours", lambda: our_data(states[False], False), data_steps, data_warmup),
        ("data: ours, augmented", lambda: our_data(states[True], True), data_steps, data_warmup),
    ], device, args.repeats)
    print()
    print_table(rows)
    by_name = {r.name: r.median for r in rows}
    default = precisions[-1]
    ours_default = by_name[f"ours, {default}, augment + EMA"]
    if with_reference_loop:
        print(f"\nours/reference at defaults ({default}, augment + EMA): "
              f"{ours_default / by_name['reference DCGAN loop']:.2f}x")
    for precision in precisions:
        plain = by_name[f"ours, {precision}, no augment, no EMA"]
        floor = by_name[f"floor, {precision}"]
        augmented = by_name[f"ours, {precision}, augment + EMA"]
        print(f"{precision}: ours/floor {plain / floor:.2f}x (no augment), augmentation + EMA cost "
              f"{1 - augmented / plain:.0%}")
    print(f"data path: ours/reference {by_name['data: ours'] / by_name['data: reference DataLoader']:.0f}x, "
          f"augmented ours/reference {by_name['data: ours, augmented'] / by_name['data: reference DataLoader']:.0f}x")
    if args.profile:
        profile_step(configured(default, True), dataset, device, args.steps)


if __name__ == "__main__":
    main()
