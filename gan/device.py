"""Device choice and the speed-ups that only pay on some devices (bf16 autocast, channels_last, compile, fused Adam)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch import nn

from gan.errors import GanError


def pick_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device that is not there is a clear error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise GanError("--device cuda: no CUDA GPU is visible to PyTorch (check nvidia-smi and the torch build), or use --device cpu")
    if name == "mps" and not mps:
        raise GanError("--device mps: Apple's Metal backend is not available here; use --device cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for plain fp32.

    auto: bf16 where the hardware computes it natively (Ampere+ GPUs; CPUs with AVX512-BF16, AMX or Arm BF16,
    where it trains faster than fp32), fp32 elsewhere (emulated bf16 is slower than fp32; docs/performance.md).
    """
    if precision == "fp32":
        return None
    if device.type == "mps":
        if precision == "bf16":
            raise GanError("--precision bf16 is not supported on mps; use --precision fp32")
        return None
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        if precision == "bf16":
            raise GanError("--precision bf16: this GPU has no native bf16 (it needs an Ampere or newer GPU); use --precision fp32")
        return None
    if device.type == "cpu" and precision == "auto" and not cpu_has_native_bf16():
        return None
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed-precision context for the forward passes; a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bf16 instructions (x86 avx512_bf16 or amx_bf16, Arm bf16), read from /proc/cpuinfo:
    Linux only; elsewhere False."""
    try:
        with open(cpuinfo) as info:
            flags = set(" ".join(line for line in info if line.startswith(("flags", "Features"))).split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def channels_last(device: torch.device, compiled: bool) -> bool:
    """channels_last on CUDA, where tensor cores run it faster, and on the CPU, where oneDNN's convolutions run
    faster with it (benchmarks/train_speed.py --variants); not under torch.compile, which picks layouts itself (and
    has failed in convolution_backward when given channels_last; docs/performance.md)."""
    return device.type in ("cuda", "cpu") and not compiled


def place(module: nn.Module, device: torch.device, channels_last: bool = False) -> nn.Module:
    """Move a network to `device`, in channels_last memory layout when asked."""
    module.to(device)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return module


def maybe_compile(module: nn.Module, enabled: bool, device: torch.device, mode: str = "default") -> nn.Module:
    """torch.compile when asked; callers keep the original module for state_dict (compiled keys differ)."""
    if enabled and device.type == "mps":
        raise GanError("--compile works on cuda and cpu only; drop --compile on mps")
    return torch.compile(module, mode=mode) if enabled else module


def replays_cuda_graphs(device: torch.device, compiled: bool, mode: str) -> bool:
    """Whether compiled networks run as CUDA graphs, whose outputs each training step must release by marking
    where it begins (inductor uses CUDA graphs in these modes on CUDA only)."""
    return compiled and device.type == "cuda" and mode in ("reduce-overhead", "max-autotune")


def adam_options(device: torch.device) -> dict:
    """Fused Adam on CUDA (one kernel for all parameters); the default implementation elsewhere."""
    return {"fused": device.type == "cuda"}


def cpu_cores() -> int:
    """Cores this process may use (respects taskset and container CPU limits, unlike os.cpu_count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a small CPU tensor (noise, indices) to `device` without a host sync: a plain copy to CUDA waits for
    every queued kernel to finish, which stops the CPU from running ahead of the GPU; one from pinned memory
    does not (the pinned block is reused only once the copy is done)."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def as_layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Give an image batch the memory layout `place` gave the networks."""
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def match_parameter_layouts(opt: torch.optim.Optimizer) -> None:
    """Give moment buffers their parameter's memory layout: a CPU checkpoint's are contiguous, a CUDA run's
    parameters channels_last, and fused Adam refuses the mix."""
    for param, state in opt.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape:
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def free_memory(device: torch.device) -> int | None:
    """Bytes a run could still allocate on `device` (None when the platform does not say): the GPU's free memory,
    or for the CPU the memory Linux reports available, within the container's limit when it has one."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", None)  # torch >= 2.5
        return recommended() - torch.mps.current_allocated_memory() if recommended else None
    found = [_meminfo_available(), _cgroup_headroom()]
    return min((value for value in found if value is not None), default=None)


def _meminfo_available(meminfo: str = "/proc/meminfo") -> int | None:
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom(cgroup: str = "/sys/fs/cgroup") -> int | None:
    """cgroup v2: the memory limit less what the container already uses."""
    try:
        limit = Path(cgroup, "memory.max").read_text().strip()
        return None if limit == "max" else int(limit) - int(Path(cgroup, "memory.current").read_text())
    except (OSError, ValueError):
        return None
