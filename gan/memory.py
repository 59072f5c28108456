"""How much memory a run needs, checked before it starts, and out-of-memory errors told in the user's terms.

The estimate runs the networks on the meta device (shapes without storage, so it costs milliseconds even at
resolutions that could never run) and counts what autograd keeps for the backward pass of D's step, the largest
moment of a training step: G's forward (kept for G's step), and D's forwards on the real and on the fake batch.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from gan.config import RunConfig
from gan.device import free_memory
from gan.errors import GanError, first_line
from gan.files import human_size
from gan.models import PerClass, discriminator, generator

# Weights, gradients and Adam's two moments for G and D, and G's moving average: floats per parameter.
_FLOATS_PER_G_PARAMETER, _FLOATS_PER_D_PARAMETER = 5, 4
_PROBE_BATCH = 2  # BatchNorm needs two images


def _kept_for_backward(forward) -> int:
    """Bytes autograd keeps for the backward pass of `forward()`: each storage once (an in-place activation and
    the next layer save the same one)."""
    kept: dict[int, int] = {}

    def count(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        kept[storage._cdata] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
        forward()
    return sum(kept.values())


def _kept_per_image(cfg: RunConfig, G: torch.nn.Module, D: torch.nn.Module, batch: int) -> int:
    """What D's step keeps for backward at `batch`: G's forward and D's on the real and on the fake images."""
    resolution, channels = cfg.data.resolution, cfg.data.channels or 3
    with torch.device("meta"):
        z = torch.zeros(batch, cfg.model.z_dim)
        labels = torch.zeros(batch, dtype=torch.long) if G.num_classes else None
        images = torch.zeros(batch, channels, resolution, resolution)
        return _kept_for_backward(lambda: G(z, labels)) + 2 * _kept_for_backward(lambda: D(images, labels))


def training_bytes(cfg: RunConfig, batch_per_process: int) -> int:
    """About how many bytes one training process needs for its networks, optimizers and the activations of a
    step (the allocator's slack, the gradient penalties and the data are not counted)."""
    resolution, channels, classes = cfg.data.resolution, cfg.data.channels or 3, cfg.num_classes
    # On meta even networks far too large to build: the first build there imports torch's compiler (about 1 s), a
    # price paid once so that a huge --g-channels or --z-dim is refused here instead of running out of memory.
    with torch.device("meta"):
        G = generator(cfg.model, resolution, channels, classes)
        D = discriminator(cfg.model, resolution, channels, classes)
    # An image passes through one member of per-class networks: activations are one member's.
    one_G, one_D = (G.members[0], D.members[0]) if isinstance(G, PerClass) else (G, D)
    # Two probe batches: their difference is what each image adds (the weights a layer saves are kept once).
    small = _kept_per_image(cfg, one_G, one_D, _PROBE_BATCH)
    per_image = (_kept_per_image(cfg, one_G, one_D, 2 * _PROBE_BATCH) - small) // _PROBE_BATCH
    parameters = (_FLOATS_PER_G_PARAMETER * sum(p.numel() for p in G.parameters())
                  + _FLOATS_PER_D_PARAMETER * sum(p.numel() for p in D.parameters())) * 4
    return parameters + small - per_image * _PROBE_BATCH + per_image * batch_per_process


def _what_to_lower(cfg: RunConfig) -> str:
    m = cfg.model
    return (f"lower --batch-size (now {cfg.train.batch_size}), --resolution (now {cfg.data.resolution}), "
            f"--g-channels / --d-channels (now {m.g_channels} / {m.d_channels}) or --z-dim (now {m.z_dim})")


def check_fits(cfg: RunConfig, device: torch.device, processes: int = 1) -> int:
    """The estimate for one process; an error before any work when it is more than `device` has free."""
    need = training_bytes(cfg, cfg.train.batch_size // processes)
    free = free_memory(device)
    if free is not None and need > free:
        raise GanError(f"this run needs at least about {human_size(need)} of memory on {device} and {human_size(free)} is free: "
                       f"{_what_to_lower(cfg)}")
    return need


def is_out_of_memory(error: BaseException) -> bool:
    """torch.OutOfMemoryError on GPUs; on the CPU, the allocator's RuntimeError or numpy's MemoryError."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(
        words in str(error) for words in ("can't allocate memory", "out of memory", "Out of memory"))


@contextlib.contextmanager
def out_of_memory_explained(cfg: RunConfig, device: torch.device, need: int) -> Iterator[None]:
    """Turns running out of memory into an error that says what to lower (checkpoints saved so far are kept)."""
    try:
        yield
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        raise GanError(f"out of memory on {device} ({first_line(error)}); the estimate was about {human_size(need)}: "
                       f"{_what_to_lower(cfg)}. Checkpoints saved so far are kept") from None
