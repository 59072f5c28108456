"""The memory estimate `gan train` checks before a run, against what a few real steps use.

    python benchmarks/memory_estimate.py [--device cpu|cuda] [--steps 3]

Each row trains a fresh process on random tensors standing in for a batch (the data is not part of the estimate):
on CUDA the measure is torch.cuda.max_memory_allocated; on the CPU, the growth of the process's peak resident
memory from just before the networks are built (allocator slack and freed pages included, so it reads higher).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

SETTINGS = [(32, 16), (32, 64), (64, 16), (64, 64), (128, 16), (128, 64)]  # (resolution, batch)

_CHILD = r"""
import json, resource, sys, torch
from gan.config import RunConfig
from gan.data import ImageDataset
from gan.memory import training_bytes
from gan.state import build_state
from gan.step import train_step

resolution, batch, device, steps = int(sys.argv[1]), int(sys.argv[2]), torch.device(sys.argv[3]), int(sys.argv[4])
cfg = RunConfig()
cfg.data.resolution, cfg.data.channels, cfg.train.batch_size, cfg.train.augment = resolution, 3, batch, "none"
images = torch.randint(0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8)
dataset = ImageDataset(images, torch.zeros(batch, dtype=torch.long), ["x"], [str(i) for i in range(batch)])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats(device)
state = build_state(cfg, dataset, device)
for step in range(1, steps + 1):
    train_step(state, cfg, None, step)
if device.type == "cuda":
    torch.cuda.synchronize(device)
    used = torch.cuda.max_memory_allocated(device)
else:
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"estimate": training_bytes(cfg, batch), "used": used}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(f"device {args.device}, {args.steps} steps, fp32, DCGAN widths 64/64, spectral-norm D\n")
    print("| resolution | batch | estimate (MiB) | used (MiB) | used / estimate |")
    print("|---|---|---|---|---|")
    for resolution, batch in SETTINGS:
        result = subprocess.run([sys.executable, "-c", _CHILD, str(resolution), str(batch), args.device,
                                 str(args.steps)], capture_output=True, text=True, check=True)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        estimate, used = figures["estimate"] / 2**20, figures["used"] / 2**20
        print(f"| {resolution} | {batch} | {estimate:.0f} | {used:.0f} | {used / estimate:.2f} |")


if __name__ == "__main__":
    main()
