"""GAN losses on raw discriminator logits (softplus forms: numerically safe, unlike Sigmoid + BCELoss)."""

import torch
import torch.nn.functional as F


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: -log D(x) - log(1 - D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z)) (strong gradients while D still wins easily)."""
    return F.softplus(-fake_logits).mean()
