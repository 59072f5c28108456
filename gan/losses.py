"""GAN losses on raw discriminator logits (softplus forms: numerically safe, unlike Sigmoid + BCELoss), the
zero-centred gradient penalties R1 and R2, their decay over training, and LeCam regularisation.

Every generator loss takes (fake_logits, real_logits); only the relativistic one reads the real logits."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def nonsaturating_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: -log D(x) - log(1 - D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def nonsaturating_g(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z)) (strong gradients while D still wins easily)."""
    return F.softplus(-fake_logits).mean()


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; SNGAN, BigGAN): no push once a logit is past the margin."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    return -fake_logits.mean()


def rpgan_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Relativistic pairing loss (Jolicoeur-Martineau 2019; R3GAN): D scores each real image above the fake it
    is paired with, so no fixed decision boundary exists for every fake to cross at once (less mode dropping)."""
    return F.softplus(fake_logits - real_logits).mean()


def rpgan_g(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """The mirror of `rpgan_d`: G raises each fake above its paired real image."""
    return F.softplus(real_logits - fake_logits).mean()


LOSSES = {"nonsaturating": (nonsaturating_d, nonsaturating_g), "hinge": (hinge_d, hinge_g),
          "rpgan": (rpgan_d, rpgan_g)}
PAIRED = {"rpgan"}  # losses whose generator step needs D's logits of real images


def gradient_penalty(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """E[ ||grad_x D(x)||^2 ]: R1 at real images (Mescheder et al. 2018), R2 at generated ones; `images` must
    require grad, and the penalty keeps its graph so that it trains D."""
    (gradient,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
    return gradient.square().sum((1, 2, 3)).mean()


def penalty_weight(gamma: float, step: int, steps: int, final: float) -> float:
    """γ at `step` of `steps`, falling along a cosine from `gamma` to `final * gamma` (R3GAN decays it: a
    strong penalty early keeps training stable, a weak one late lets D sharpen the details)."""
    progress = min(step / steps, 1.0)
    return gamma * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))


class LeCam:
    """LeCam regularisation (Tseng et al. 2021): D's logits are pulled towards the moving averages of its own
    outputs on the other kind of image, which bounds how far D can separate few real images from the fakes.

    The averages are part of the training state: `state_dict` / `load_state_dict` carry them across a resume."""

    DECAY = 0.99  # as in the paper's code

    def __init__(self, device: torch.device | str = "cpu", average=lambda value: value):
        self.real = torch.zeros((), device=device)
        self.fake = torch.zeros((), device=device)
        self.average = average  # a batch's mean over all training processes, so the averages agree on every one

    def penalty(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Update the averages with this batch, then E[relu(D(x) - avg fake)^2] + E[relu(avg real - D(G(z)))^2]."""
        self.real.lerp_(self.average(real_logits.detach().mean()), 1 - self.DECAY)
        self.fake.lerp_(self.average(fake_logits.detach().mean()), 1 - self.DECAY)
        return F.relu(real_logits - self.fake).square().mean() + F.relu(self.real - fake_logits).square().mean()

    def state_dict(self) -> dict:
        return {"real": self.real.cpu(), "fake": self.fake.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.real.copy_(state["real"])
        self.fake.copy_(state["fake"])
