"""DCGAN generator and discriminator for any power-of-two resolution (Radford et al. 2016), plus the moving
average of the generator that grids and exports use. Pure modules: no IO, no devices, no optimizers."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from gan.config import ModelConfig

_MAX_WIDTH_MULTIPLIER = 8  # DCGAN's widest layer is 8x the base width; deeper nets stop doubling there


def _dcgan_init(module: nn.Module) -> None:
    """Weights N(0, 0.02), BatchNorm scales N(1, 0.02): the initialisation DCGAN's stability was tuned on."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _stages(resolution: int) -> int:
    """Number of 2x resolution changes between 4x4 and `resolution`."""
    return int(math.log2(resolution)) - 2


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, channels, resolution, resolution) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig, resolution: int, channels: int):
        super().__init__()
        self.z_dim = cfg.z_dim
        stages = _stages(resolution)

        def width(i: int) -> int:  # i = 0 at 4x4, halving towards the output
            return cfg.g_channels * min(_MAX_WIDTH_MULTIPLIER, 2 ** (stages - 1 - i))

        layers = [  # (B, z_dim, 1, 1) -> (B, width(0), 4, 4)
            nn.ConvTranspose2d(cfg.z_dim, width(0), 4, 1, 0, bias=False),
            nn.BatchNorm2d(width(0)),
            nn.ReLU(True),
        ]
        for i in range(1, stages):  # each doubles the resolution: 8x8 ... resolution/2
            layers += [nn.ConvTranspose2d(width(i - 1), width(i), 4, 2, 1, bias=False), nn.BatchNorm2d(width(i)), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(width(stages - 1), channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    """images (B, channels, resolution, resolution) -> real/fake logits (B,)."""

    def __init__(self, cfg: ModelConfig, resolution: int, channels: int):
        super().__init__()
        stages = _stages(resolution)

        def width(i: int) -> int:  # i = 0 at resolution/2, doubling towards 4x4
            return cfg.d_channels * min(_MAX_WIDTH_MULTIPLIER, 2**i)

        # No BatchNorm on the first layer: DCGAN found it destabilises training on raw pixels.
        layers = [nn.Conv2d(channels, width(0), 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for i in range(1, stages):  # each halves the resolution, down to 4x4
            layers += [nn.Conv2d(width(i - 1), width(i), 4, 2, 1, bias=False), nn.BatchNorm2d(width(i)), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(width(stages - 1), 1, 4, 1, 0, bias=False)]  # (B, width, 4, 4) -> (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten()


def ema_decay_at(step: int, decay: float) -> float:
    """Moving-average decay with a warm-up, so early grids are not dominated by the random initial weights."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameters only (BatchNorm statistics: `refresh_batchnorm_stats`)."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


@torch.no_grad()
def refresh_batchnorm_stats(generator: nn.Module, z_batches: Iterable[torch.Tensor]) -> None:
    """Recompute BatchNorm running statistics for `generator`'s own weights from the given noise batches.

    The averaged generator's weights never produced the statistics the training generator collected, so its
    eval-mode output is only right with statistics measured on it ("standing statistics", as in BigGAN).
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    generator.train()
    for z in z_batches:
        generator(z)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    generator.eval()
