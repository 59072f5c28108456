"""Inversion into the generator's latent space, and variants drawn near the latent found."""

import torch

from gan.anchored import invert, variants
from gan.config import ModelConfig
from gan.models import generator
from gan.pixels import to_uint8

CPU = torch.device("cpu")


def tiny_generator(classes: int = 2):
    torch.manual_seed(0)
    return generator(ModelConfig(z_dim=8, g_channels=8, d_channels=8), 16, 3, classes).eval().requires_grad_(False)


class LinearGenerator(torch.nn.Module):
    """A generator whose images depend strongly on z (an untrained DCGAN's hardly do): tanh(W z + class bias)."""

    z_dim = 8

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.weight, self.bias = torch.randn(3 * 16 * 16, 8) / 2, torch.randn(2, 3 * 16 * 16) / 2

    def forward(self, z, labels):
        return torch.tanh(z @ self.weight.T + self.bias[labels]).view(-1, 3, 16, 16)


def test_inversion_finds_the_latent_that_drew_an_image():
    G, labels = LinearGenerator(), torch.tensor([0, 1, 1])
    with torch.no_grad():
        targets = to_uint8(G(torch.randn(3, 8, generator=torch.Generator().manual_seed(1)), labels))
        start = (G(torch.zeros(3, 8), labels) - targets.float() / 127.5 + 1).square().mean((1, 2, 3))
    z, distance = invert(G, targets, labels, CPU)
    assert z.shape == (3, 8) and (distance < start / 20).all() and (distance < 1e-3).all()


def test_variants_repeat_from_their_seeds_and_stay_near_their_latent():
    G = tiny_generator()
    z, labels = torch.randn(2, 8, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 1])
    first, again = variants(G, z, labels, [5, 6], CPU), variants(G, z, labels, [5, 6], CPU)
    assert torch.equal(first, again)
    assert not torch.equal(first, variants(G, z, labels, [7, 8], CPU))
    with torch.no_grad():
        assert torch.equal(variants(G, z, labels, [5, 6], CPU, jitter=0.0), G(z, labels))
