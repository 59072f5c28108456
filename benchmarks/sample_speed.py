"""Export speed: `gan sample` writing PNG and JPEG files, against the floor of the generator's forward pass alone
at the same batch size.

    python benchmarks/sample_speed.py [--run RUN] [--count 1000] [--resolution 64] [--repeats 3] [--profile]

Without --run it trains a one-step run at --resolution on the bundled emoji (speed does not depend on the weights).
Each export writes --count images into a fresh folder; the cases take turns, --repeats rounds after a warm-up, and
the disk is synced before each timing so that one case's write-back is not charged to the next.
--profile prints where an export's time goes (cProfile, by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
from pathlib import Path

import torch

from gan import device as devices
from gan.checkpoint import load_checkpoint, pick_checkpoint
from gan.command_config import SampleConfig
from gan.config import RunConfig
from gan.generate import load_generator
from gan.sample import export
from gan.train import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import describe_machine, measure_turns, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def one_step_run(resolution: int, out: Path) -> Path:
    cfg = RunConfig()
    cfg.data.path = str(ROOT / "data" / "emoji")
    cfg.data.resolution = resolution
    cfg.train.steps, cfg.train.eval_every, cfg.train.tensorboard, cfg.train.out = 1, 0, False, str(out)
    return train(cfg, log=lambda _: None).run_dir


def forward_floor(run: Path, device: torch.device, batch_size: int):
    """run(batches) -> images: G forward alone on noise already on the device, as export runs it (fp32, eval)."""
    G = load_generator(load_checkpoint(pick_checkpoint(str(run), "")), device)
    z = torch.randn(batch_size, G.z_dim, device=device)
    labels = torch.zeros(batch_size, dtype=torch.long, device=device) if G.num_classes else None

    @torch.no_grad()
    def run_batches(batches: int) -> int:
        for _ in range(batches):
            G(z, labels)
        return batches * batch_size

    return run_batches


def exporter(run: Path, work: Path, fmt: str, device: str, batch_size: int):
    """run(count) -> images: one `gan sample` export of `count` images into a fresh folder."""
    def run_export(count: int) -> int:
        out = Path(tempfile.mkdtemp(dir=work))  # left for the temporary folder's clean-up: deleting is not exporting
        export(SampleConfig(run=str(run), count=count, out=str(out), format=fmt, device=device,
                            batch_size=batch_size), log=lambda _: None)
        return count

    return run_export


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="run folder to export from (default: a fresh one-step run)")
    parser.add_argument("--count", type=int, default=1000, help="images per export")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    device = devices.pick_device(args.device)
    with tempfile.TemporaryDirectory(prefix="gan-sample-speed-") as tmp:
        work = Path(tmp)
        run = Path(args.run) if args.run else one_step_run(args.resolution, work / "runs")
        resolution = load_checkpoint(pick_checkpoint(str(run), "")).saved_config().data.resolution
        print(f"{describe_machine(device)}; {resolution} px, batch {args.batch_size}, {args.count} images per "
              f"export, median of {args.repeats}")
        batches = -(-args.count // args.batch_size)
        cases = [("floor: G forward", lambda: forward_floor(run, device, args.batch_size), batches, 2)]
        cases += [(f"export {fmt.upper()}", lambda f=fmt: exporter(run, work, f, args.device, args.batch_size),
                   args.count, args.batch_size) for fmt in ("png", "jpg")]
        rows = measure_turns(cases, device, args.repeats, settle=os.sync)
        print()
        print_table(rows)
        floor = rows[0].median
        print("\n" + ", ".join(f"{r.name}/floor {r.median / floor:.2f}x" for r in rows[1:]))
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(exporter(run, work, "png", args.device, args.batch_size), args.count)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)


if __name__ == "__main__":
    main()
