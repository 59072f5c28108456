"""Images from a trained generator: one seed per image, so results do not depend on batch size or device, and
any single image can be regenerated from its seed."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from gan import device as devices
from gan.checkpoint import Checkpoint
from gan.errors import GanError
from gan.models import class_strength_at, discriminator, generator, set_class_strength


def _load_network(checkpoint: Checkpoint, build, key: str, device: torch.device) -> nn.Module:
    cfg = checkpoint.saved_config()
    network = build(cfg.model, cfg.data.resolution, cfg.data.channels, cfg.num_classes)
    try:
        network.load_state_dict(checkpoint.weights(key))
    except (RuntimeError, KeyError) as error:
        raise GanError(f"{checkpoint.path}: its {build.__name__} weights do not match its own config ({error})") from None
    if cfg.train.class_blend_steps:  # a checkpoint from before the class counted fully is used as it was trained
        set_class_strength([network], class_strength_at(checkpoint.step, cfg.train.class_blend_steps))
    return devices.place(network, device, devices.channels_last(device, compiled=False)).eval().requires_grad_(False)


def load_generator(checkpoint: Checkpoint, device: torch.device) -> nn.Module:
    """The checkpoint's moving-average generator, in eval mode on `device`."""
    return _load_network(checkpoint, generator, "G_ema", device)


def load_discriminator(checkpoint: Checkpoint, device: torch.device) -> nn.Module:
    """The checkpoint's discriminator, in eval mode on `device`: its logit is each exported image's D score."""
    return _load_network(checkpoint, discriminator, "D", device)


@torch.no_grad()
def d_scores(D: nn.Module, images: torch.Tensor, labels: list[int] | None, device: torch.device) -> list[float]:
    """D's logit for each image in [-1, 1] (and its class): higher means D finds it more like the real images."""
    y = torch.tensor(labels, device=device) if labels is not None else None
    return D(images.to(device), y).float().cpu().tolist()


def noise_for_seeds(seeds: list[int], z_dim: int, truncation: float = 0.0) -> torch.Tensor:
    """(len(seeds), z_dim) noise, row i drawn from a CPU generator seeded seeds[i]. With `truncation`, every
    coordinate whose magnitude exceeds it is drawn again from the same generator until none does (BigGAN's
    truncation trick)."""
    return torch.stack([_noise(torch.Generator().manual_seed(s), z_dim, truncation) for s in seeds])


def _noise(generator: torch.Generator, z_dim: int, truncation: float) -> torch.Tensor:
    z = torch.randn(z_dim, generator=generator)
    while truncation and (outside := z.abs() > truncation).any():
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
    return z


@torch.no_grad()
def generate(G: nn.Module, seeds: list[int], labels: list[int] | None, batch_size: int,
             device: torch.device, truncation: float = 0.0) -> Iterator[torch.Tensor]:
    """Batches of generated images (B, C, H, W) in [-1, 1] on the CPU, in the order of `seeds` (and `labels`,
    the class of each image for a conditional generator), from noise truncated at `truncation` (0: not)."""
    for start in range(0, len(seeds), batch_size):
        z = noise_for_seeds(seeds[start : start + batch_size], G.z_dim, truncation).to(device)
        y = torch.tensor(labels[start : start + batch_size], device=device) if labels is not None else None
        yield G(z, y).float().cpu()


def spread(count: int, weights: list[int]) -> list[int]:
    """Split `count` in proportion to `weights`, rounding by largest remainder so the parts add up exactly."""
    if not sum(weights):  # e.g. only classes whose training images were all skipped: share equally
        weights = [1] * len(weights)
    total = sum(weights)
    exact = [count * w / total for w in weights]
    parts = [int(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[: count - sum(parts)]:
        parts[i] += 1
    return parts
