"""What the speed benchmarks share: timing in turns with medians, the memory each case adds, the machine header."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from gan.device import cpu_cores

Run = Callable[[int], int]  # run(steps) -> number of images it handled


@dataclass
class Measured:
    name: str
    rates: list[float]  # images/s of each repeat
    memory_mb: float  # peak resident memory this case added (this process and its children) over what was there
    cuda_mb: float | None = None  # peak CUDA memory it added, on a GPU

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def memory_bytes() -> dict[str, int]:
    """Resident memory of this process plus its children (DataLoader workers, decoding processes), from
    /proc/<pid>/status (cheap enough to sample every 10 ms, unlike smaps): rss, all of it, and anon, the anonymous
    part the kernel cannot drop (a memory-mapped file's pages it can). Pages a forked worker still shares with its
    parent count in both."""
    totals, pending = {"rss": 0, "anon": 0}, [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
            totals["rss"] += int(status["VmRSS"].split()[0]) * 1024
            totals["anon"] += int(status["RssAnon"].split()[0]) * 1024
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError, KeyError):
            continue
    return totals


@contextmanager
def peak_memory(device: torch.device):
    """Yields a dict that holds, after the block, the peak rss and anon memory (MB, sampled every 10 ms) and the
    CUDA peak allocated (MB), each also as an increase over the start of the block (rss_added_mb ...)."""
    result: dict = {}
    on_linux = Path("/proc/self/status").exists()
    start = memory_bytes() if on_linux else {"rss": 0, "anon": 0}
    peak = dict(start)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            for key, value in memory_bytes().items():
                peak[key] = max(peak[key], value)

    sampler = threading.Thread(target=sample, daemon=True)
    if on_linux:
        sampler.start()
    if device.type == "cuda":
        cuda_start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield result
    finally:
        done.set()
        if on_linux:
            sampler.join()
        else:  # the process's lifetime peak resident memory: an upper bound
            peak["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if platform.system() == "Darwin" else 1024)
        for key in ("rss", "anon"):
            result[f"{key}_mb"] = peak[key] / 2**20
            result[f"{key}_added_mb"] = (peak[key] - start[key]) / 2**20
        if device.type == "cuda":
            result["cuda_added_mb"] = (torch.cuda.max_memory_allocated(device) - cuda_start) / 2**20


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_turns(cases: list[tuple[str, Callable[[], Run], int, int]], device: torch.device, repeats: int,
                  settle: Callable[[], None] = lambda: None) -> list[Measured]:
    """Images/s of several (name, make_run, steps, warmup) cases, timed in turns: one repeat of each per round, so
    that on a shared machine whose speed drifts every case sees the same drift and their ratios hold. A case is
    built, warmed up and timed for the first time in round one, which is when its memory is measured: what it
    added to what the earlier cases hold. The device is synchronised at the end of each repeat, never inside it;
    `settle()` runs before each timing (e.g. flushing the files the previous case wrote, so that their write-back
    is not charged to the next case)."""
    runs: dict[str, Run] = {}
    rates: dict[str, list[float]] = {name: [] for name, *_ in cases}
    memory: dict[str, dict] = {}

    def time_once(name: str, run: Run, steps: int) -> None:
        settle()
        start = time.perf_counter()
        images = run(steps)
        synchronize(device)
        rates[name].append(images / (time.perf_counter() - start))

    for round_ in range(repeats):
        for name, make_run, steps, warmup in cases:
            if round_ == 0:
                with peak_memory(device) as memory[name]:
                    runs[name] = make_run()
                    runs[name](warmup)
                    synchronize(device)
                    time_once(name, runs[name], steps)
            else:
                time_once(name, runs[name], steps)
        print(f"  round {round_ + 1}/{repeats}: " + ", ".join(f"{name} {rates[name][-1]:,.0f}" for name, *_ in cases),
              flush=True)
    return [Measured(name, rates[name], memory[name]["rss_added_mb"], memory[name].get("cuda_added_mb"))
            for name, *_ in cases]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return (f"device {device} ({where}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{cpu_cores()} cores")


def print_table(rows: list[Measured]) -> None:
    """One line per case: median images/s, the spread of the repeats, the memory it added."""
    cuda = any(r.cuda_mb is not None for r in rows)
    width = max(len(r.name) for r in rows)
    print(f"{'':<{width}}  {'img/s':>9}  {'repeats (min-max)':>17}  {'memory added':>12}" + ("  CUDA added" if cuda else ""))
    for r in rows:
        spread = f"{min(r.rates):,.0f}-{max(r.rates):,.0f}"
        line = f"{r.name:<{width}}  {r.median:>9,.0f}  {spread:>17}  {r.memory_mb:>9,.0f} MB"
        if r.cuda_mb is not None:
            line += f"  {r.cuda_mb:>7,.0f} MB"
        print(line)
    print("(memory added: peak resident memory of this process and its workers while the case was built, warmed up "
          "and first timed, over what the cases before it held)")
