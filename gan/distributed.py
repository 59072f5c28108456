"""Training on several processes with torchrun: which process this is, and the few collective operations the
training loop needs. A single process is the plain case: every operation is then local and free.

Every process keeps the same state (weights, optimizers, random streams, augmentation p): each draws the
randomness of the whole batch and keeps its share, and DistributedDataParallel averages the gradients. So a
checkpoint does not depend on how many processes wrote it, and any number can resume it.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gan.device import pick_device
from gan.errors import GanError
from gan.models import PerClass

# torch 2.13 renamed the option (the old name warns since); buffers start the same everywhere (from --seed or the
# checkpoint), so whether they are synced once at the start does not matter.
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                   inspect.signature(DistributedDataParallel).parameters else {"broadcast_buffers": False})
# Others wait while the first process scores an evaluation alone (its first one also trains the judge).
_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes, and collectives over all of them."""

    rank: int = 0
    processes: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where collectives run: the process's GPU under NCCL, the CPU under gloo

    @property
    def main(self) -> bool:
        """The process that writes the run folder and prints."""
        return self.rank == 0

    @property
    def share(self) -> tuple[int, int]:
        return self.rank, self.processes

    def rows(self, count: int) -> slice:
        """This process's contiguous part of `count` items (parts differ in size by at most one)."""
        return slice(self.rank * count // self.processes, (self.rank + 1) * count // self.processes)

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of `value` over all processes (no host sync: it stays on the device)."""
        if self.processes == 1:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.processes

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one: how they agree to stop."""
        if self.processes == 1:
            return flag
        vote = torch.tensor(float(flag), device=self.device)
        dist.all_reduce(vote, op=dist.ReduceOp.MAX)
        return bool(vote.item())

    def gather(self, part: torch.Tensor) -> torch.Tensor | None:
        """Every process's `part`, concatenated in rank order on the first process (on the CPU); None elsewhere."""
        if self.processes == 1:
            return part
        parts: list | None = [None] * self.processes if self.main else None
        dist.gather_object(part.cpu(), parts, dst=0)
        return torch.cat(parts) if self.main else None

    def broadcast(self, value):
        """The first process's `value`, on every process (any picklable object)."""
        if self.processes == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @contextlib.contextmanager
    def main_first(self):
        """The first process runs the block alone (it fills the data cache), then the others, reading its work."""
        if not self.main:
            dist.barrier()
        yield
        if self.main and self.processes > 1:
            dist.barrier()

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` under DistributedDataParallel, which averages its gradients over the processes.

        No buffer broadcast at each forward: D runs on reals and on fakes before one backward, and DDP's default
        broadcast of buffers at every forward writes in place into buffers that pass needs (pytorch/pytorch#22095,
        #110363). Nothing needs the broadcast: spectral norm's power-iteration vectors follow from the weights, which are the same
        everywhere. BatchNorm normalises each process's share by its own statistics (SyncBatchNorm would add a
        collective to every layer, and runs on GPUs only); its running averages differ a little between processes
        and checkpoints keep the first's, while the moving-average G that exports use recomputes its own anyway.
        """
        if self.processes == 1:
            return module
        ids = [self.local_rank] if self.device.startswith("cuda") else None
        # Per-class networks: a member whose class is missing from a process's share has no gradient that step.
        unused = isinstance(module, PerClass)
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=unused, **_NO_BUFFER_SYNC)


SINGLE = Ranks()


@contextlib.contextmanager
def joined(device: str):
    """Join the processes torchrun started (it sets WORLD_SIZE, RANK, LOCAL_RANK and the rendezvous address);
    without torchrun, or with one process, this is the single process. NCCL on GPUs, gloo on CPUs."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes == 1:
        yield SINGLE
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "mps":
        raise GanError("--device mps trains in one process only: run gan train without torchrun, or use --device cpu")
    on_gpu = pick_device(device).type == "cuda"
    if on_gpu:
        if local_rank >= torch.cuda.device_count():
            raise GanError(f"torchrun started more processes on this node than it has GPUs "
                           f"({torch.cuda.device_count()}): lower --nproc-per-node")
        torch.cuda.set_device(local_rank)
    where = f"cuda:{local_rank}" if on_gpu else "cpu"
    store, rank, _ = next(dist.rendezvous("env://", timeout=_TIMEOUT))
    # torchrun's store outlives a restart of the workers, and the addresses the last ones left in it would be taken
    # for the new ones' ("connection refused", pytorch/pytorch#167288): each restart uses keys of its own.
    store = dist.PrefixStore(f"gan.restart{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
    dist.init_process_group("nccl" if on_gpu else "gloo", store=store, rank=rank, world_size=processes,
                            timeout=_TIMEOUT)
    try:
        yield Ranks(dist.get_rank(), processes, local_rank, where)
    except dist.DistBackendError as error:  # what the others see when one process dies
        reason = str(error).split("] ", 1)[-1].split(". ")[0]
        raise GanError(f"lost contact with another training process ({reason}): it stopped, and its own output "
                       f"says why") from None
    else:
        _leave_together()
    finally:
        # DistributedDataParallel modules hold the group: freed now, not at interpreter exit, where gloo's threads
        # can end with SIGABRT ("terminate called without an active exception")
        gc.collect()
        dist.destroy_process_group()


def _leave_together() -> None:
    """Wait for the others before the group is destroyed: gloo can abort a process whose peer tears down while it
    still sends. A peer that failed instead has said why in its own output, and this process's work is done."""
    try:
        dist.barrier()
    except RuntimeError:  # the peer is gone (DistBackendError is a RuntimeError too)
        pass
