"""What the speed benchmarks share: timing with medians, peak memory while a section runs, the machine header."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from gan.device import cpu_cores


@dataclass
class Measured:
    name: str
    rates: list[float]  # images/s of each repeat
    rss_mb: float  # peak resident memory of this process and its children while the section ran
    cuda_mb: float | None = None  # peak CUDA memory allocated, on a GPU
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def memory_bytes() -> tuple[int, int]:
    """(resident, anonymous resident) bytes of this process plus its children (DataLoader workers, decoding
    processes), from /proc. Anonymous memory is what the kernel cannot drop; resident also counts the pages of
    memory-mapped files, which it can."""
    resident, anonymous, pending = 0, 0, [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
            resident += int(status["VmRSS"].split()[0]) * 1024
            anonymous += int(status["RssAnon"].split()[0]) * 1024
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError, KeyError):
            continue
    return resident, anonymous


@contextmanager
def peak_memory(device: torch.device):
    """Yields a dict that holds, after the block, its peak resident and anonymous memory (MB, sampled every 10 ms)
    and the CUDA peak (MB)."""
    result: dict = {}
    on_linux = Path("/proc/self/status").exists()
    peak = list(memory_bytes()) if on_linux else [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[:] = map(max, peak, memory_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    if on_linux:
        sampler.start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield result
    finally:
        done.set()
        if on_linux:
            sampler.join()
        else:  # the process's lifetime peak: an upper bound for this block
            peak[0] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if platform.system() == "Darwin" else 1024)
        result["rss_mb"], result["anon_mb"] = peak[0] / 2**20, peak[1] / 2**20
        if device.type == "cuda":
            result["cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure(name: str, run: Callable[[int], int], device: torch.device, steps: int, repeats: int, warmup: int,
            note: str = "") -> Measured:
    """Images/s of `run(steps)` (which returns the number of images it handled) over `repeats` timed repeats after
    `warmup` untimed steps; the device is synchronised only at the end of each repeat, never inside it."""
    with peak_memory(device) as memory:
        run(warmup)
        synchronize(device)
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            images = run(steps)
            synchronize(device)
            rates.append(images / (time.perf_counter() - start))
    result = Measured(name, rates, memory["rss_mb"], memory.get("cuda_mb"), note)
    print(f"  {name}: {result.median:,.0f} img/s", flush=True)
    return result


def measure_turns(cases: list[tuple[str, Callable[[int], int], int, int]], device: torch.device,
                  repeats: int, settle: Callable[[], None] = lambda: None) -> list[Measured]:
    """`measure` for several (name, run, steps, warmup) cases, timed in turns, one repeat of each per round: on a
    shared machine whose speed drifts, every case sees the same drift, so their ratios hold. `settle()` runs
    before each timing (e.g. flushing the files the previous case wrote, so their write-back is not charged to
    the next case)."""
    rates: dict[str, list[float]] = {name: [] for name, *_ in cases}
    peaks = {name: {"rss_mb": 0.0, "anon_mb": 0.0} for name, *_ in cases}
    for round_ in range(repeats):
        for name, run, steps, warmup in cases:
            with peak_memory(device) as memory:
                if round_ == 0:
                    run(warmup)
                    synchronize(device)
                settle()
                start = time.perf_counter()
                images = run(steps)
                synchronize(device)
                rates[name].append(images / (time.perf_counter() - start))
            peaks[name] = {key: max(value, peaks[name].get(key) or 0.0) for key, value in memory.items()}
        print(f"  round {round_ + 1}/{repeats}: " + ", ".join(f"{name} {rates[name][-1]:,.0f}" for name, *_ in cases),
              flush=True)
    return [Measured(name, rates[name], peaks[name]["rss_mb"], peaks[name].get("cuda_mb")) for name, *_ in cases]


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
    """One line per measurement: median images/s, the spread of the repeats, peak memory."""
    cuda = any(r.cuda_mb is not None for r in rows)
    width = max(len(r.name) for r in rows)
    header = f"{'':<{width}}  {'img/s':>9}  {'repeats (min-max)':>17}  {'peak RSS':>9}"
    print(header + ("  CUDA peak" if cuda else ""))
    for r in rows:
        spread = f"{min(r.rates):,.0f}-{max(r.rates):,.0f}"
        line = f"{r.name:<{width}}  {r.median:>9,.0f}  {spread:>17}  {r.rss_mb:>6,.0f} MB"
        if cuda:
            line += f"  {r.cuda_mb:>6,.0f} MB" if r.cuda_mb is not None else ""
        print(line + (f"  {r.note}" if r.note else ""))
