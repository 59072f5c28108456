"""Images anchored to real ones (the idea of DAGAN and of "Training on Thin Air", with this project's own GAN):
each real image is inverted into the generator's latent space, z optimised so that G(z, the image's class) draws
it, and its variants are drawn from latents jittered around that z. Their label is the real image's, so it holds
even where the generator's class conditioning is weak. Model code only: `gan sample --near` does the files."""

from __future__ import annotations

import torch
from torch import nn

from gan.generate import noise_for_seeds
from gan.pixels import to_signed

INVERSION_STEPS = 200  # Adam steps on z: the reconstruction error levels off by then at 32 px
INVERSION_LR = 0.05
JITTER = 0.5  # standard deviation of the noise added to an inverted z (its prior's is 1)


def invert(G: nn.Module, images: torch.Tensor, labels: torch.Tensor | None, device: torch.device,
           steps: int = INVERSION_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, distance) of uint8 `images` (N, C, H, W): the latent from which G draws each most nearly, searched from
    the prior's mean, and the mean squared pixel difference left (in [-1, 1] units; 0: drawn exactly)."""
    target = to_signed(images).to(device)
    y = labels.to(device) if labels is not None else None
    z = torch.zeros(len(images), G.z_dim, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([z], lr=INVERSION_LR)
    with torch.enable_grad():
        for _ in range(steps):
            error = (G(z, y).float() - target).square().mean((1, 2, 3))
            optimizer.zero_grad(set_to_none=True)
            error.sum().backward()
            optimizer.step()
    with torch.no_grad():
        distance = (G(z, y).float() - target).square().mean((1, 2, 3))
    return z.detach().cpu(), distance.cpu()


@torch.no_grad()
def variants(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None, seeds: list[int], device: torch.device,
             jitter: float = JITTER) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1], on the CPU, drawn from each row of `z` moved by `jitter` times the noise of
    its seed in `seeds` (so any variant can be drawn again alone)."""
    moved = z + jitter * noise_for_seeds(seeds, z.shape[1])
    y = labels.to(device) if labels is not None else None
    return G(moved.to(device), y).float().cpu()
