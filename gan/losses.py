"""GAN losses on raw discriminator logits (softplus forms: numerically safe, unlike Sigmoid + BCELoss), and the
R1 gradient penalty."""

import torch
import torch.nn.functional as F


def nonsaturating_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: -log D(x) - log(1 - D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def nonsaturating_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z)) (strong gradients while D still wins easily)."""
    return F.softplus(-fake_logits).mean()


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; SNGAN, BigGAN): no push once a logit is past the margin."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


LOSSES = {"nonsaturating": (nonsaturating_d, nonsaturating_g), "hinge": (hinge_d, hinge_g)}


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """E[ ||grad_x D(x)||^2 ] on real images (Mescheder et al. 2018); `real_images` must require grad."""
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradient.square().sum((1, 2, 3)).mean()
