"""The decoded-image cache at scale, and how fast a second run starts.

    python benchmarks/data_scale.py --images 100000 [--resolution 64] [--work /tmp/gan-scale]
    python benchmarks/data_scale.py --images 5000 --startup

Generates a folder of N synthetic PNGs in 10 class folders under --work (kept for the next time, not committed),
then, with a fresh cache:
- cold load: scan + decode with every core + cache write: wall time, decode images/s, peak memory;
- warm load: the same folder again (from the cache, memory-mapped above --ram-limit-gb): wall time, peak memory;
- batches: images/s of shuffled training batches drawn from the loaded dataset, and peak memory while drawing.
Memory is resident and anonymous (what the kernel cannot drop; a memory-mapped cache's pages it can) memory of this
process and its decoding workers.
--startup also runs `gan train` twice on the folder (the first run builds the cache) and times, in fresh processes,
the Python + torch import and then `gan train` up to its first training step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

MARKER = ".gan-scale-benchmark"  # the only kind of folder this script ever deletes files from
CLASSES = 10

# Run in a fresh process: times the imports, then `gan train` until its first training step, and stops there.
STARTUP_CHILD = """
import json, sys, time
start = time.perf_counter()
import gan.train
from gan.cli import main
imported = time.perf_counter()
real_step = gan.train.train_step
def first_step(*args, **kwargs):
    print(json.dumps({"import_s": imported - start, "to_first_step_s": time.perf_counter() - imported}))
    raise SystemExit(0)
gan.train.train_step = first_step
main(sys.argv[1:])
"""


def _write_images(folder: Path, first: int, count: int, size: int) -> None:
    """Blocky colour images with some noise: they compress like photos more than like flat colour."""
    for i in range(first, first + count):
        rng = np.random.default_rng(i)
        blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        pixels = np.repeat(np.repeat(blocks, size // 8, 0), size // 8, 1)
        pixels = np.clip(pixels.astype(np.int16) + rng.integers(-12, 13, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"class{i % CLASSES}" / f"{i:07d}.png", compress_level=1)


def make_folder(work: Path, count: int, size: int) -> Path:
    folder = work / f"images-{count}-{size}px"
    if (folder / MARKER).exists() and (folder / MARKER).read_text() == str(count):
        return folder
    if folder.exists() and not (folder / MARKER).exists():
        raise SystemExit(f"{folder} exists and was not made by this benchmark; choose another --work")
    for c in range(CLASSES):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    chunk = 2000
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_images, [folder] * len(range(0, count, chunk)), range(0, count, chunk),
                      [min(chunk, count - s) for s in range(0, count, chunk)], [size] * len(range(0, count, chunk))))
    (folder / MARKER).write_text(str(count))
    print(f"generated {count} images in {folder} in {time.perf_counter() - started:.0f} s")
    return folder


def scale(folder: Path, work: Path, resolution: int, ram_limit_gb: float) -> None:
    import shutil

    import torch

    from gan.config import DataConfig
    from gan.batches import RealBatches
    from gan.data import load_dataset
    from speed import describe_machine, memory_bytes, peak_memory

    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    cfg = DataConfig(path=str(folder), resolution=resolution, cache_dir=str(cache), ram_limit_gb=ram_limit_gb)
    cpu = torch.device("cpu")
    print(describe_machine(cpu))
    baseline = memory_bytes()
    rows = [("baseline (python + torch)", 0.0, 0.0, {"rss_mb": baseline["rss"] / 2**20, "anon_mb": baseline["anon"] / 2**20})]
    for name in ("cold load (scan, decode, cache)", "warm load (from the cache)"):
        lines = []
        with peak_memory(cpu) as memory:
            started = time.perf_counter()
            dataset = load_dataset(cfg, log=lines.append)
            seconds = time.perf_counter() - started
        rows.append((name, seconds, len(dataset) / seconds, memory))
        print(f"  {name}: {seconds:.1f} s; {lines[-1]}; {lines[0] if 'cache' in lines[0] else ''}")
    size_mb = len(dataset) * 3 * resolution**2 / 2**20  # decoded RGB, what --ram-limit-gb is compared with
    batches = RealBatches(dataset, 64, True, False, torch.Generator().manual_seed(0), cpu)
    count = max(200, len(dataset) // 64)
    with peak_memory(cpu) as memory:
        started = time.perf_counter()
        for _ in range(count):
            next(batches)
        seconds = time.perf_counter() - started
    rows.append((f"batches ({count} of 64, mirrored)", seconds, count * 64 / seconds, memory))

    print(f"\n{len(dataset):,} images at {resolution} px: {size_mb:,.0f} MB of pixels, "
          f"{'memory-mapped' if size_mb > ram_limit_gb * 1024 else 'in RAM'} (--ram-limit-gb {ram_limit_gb})")
    print(f"{'':<34} {'time':>7} {'img/s':>9} {'peak RSS':>9} {'peak anon':>10}")
    for name, seconds, rate, memory in rows:
        print(f"{name:<34} {seconds:>6.1f}s {rate:>9,.0f} {memory['rss_mb']:>6,.0f} MB {memory['anon_mb']:>7,.0f} MB")


def startup(folder: Path, work: Path, resolution: int, repeats: int) -> None:
    command = [sys.executable, "-c", STARTUP_CHILD, "train", "--data", str(folder), "--resolution", str(resolution),
               "--steps", "10", "--out", str(work / "runs"), "--cache-dir", str(work / "startup-cache")]

    def run() -> dict:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"gan train failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    import shutil

    shutil.rmtree(work / "startup-cache", ignore_errors=True)
    first = run()
    warm = [run() for _ in range(repeats)]
    median = {key: statistics.median(r[key] for r in warm) for key in warm[0]}
    print(f"\n`gan train` on {folder.name} ({resolution} px), median of {repeats} second runs:")
    print(f"  Python + torch + gan import:         {median['import_s']:.2f} s")
    print(f"  gan train to its first step:          {median['to_first_step_s']:.2f} s  "
          f"(first run, building the cache: {first['to_first_step_s']:.2f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--work", default="/tmp/gan-scale", help="where the generated folder and caches go")
    parser.add_argument("--ram-limit-gb", type=float, default=1.0, help="as gan train's flag")
    parser.add_argument("--startup", action="store_true", help="also time a second `gan train` to its first step")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(args.work)
    folder = make_folder(work, args.images, args.resolution)
    scale(folder, work, args.resolution, args.ram_limit_gb)
    if args.startup:
        startup(folder, work, args.resolution, args.repeats)


if __name__ == "__main__":
    main()
