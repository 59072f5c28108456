import pytest
import torch

from gan.config import ModelConfig
from gan.models import (Discriminator, Generator, class_strength_at, discriminator, ema_decay_at, generator,
                        refresh_batchnorm_stats, set_class_strength, update_ema)


@pytest.mark.parametrize("resolution", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_any_power_of_two(resolution, channels):
    cfg = ModelConfig(z_dim=12, g_channels=4, d_channels=4)
    G, D = Generator(cfg, resolution, channels), Discriminator(cfg, resolution, channels)
    images = G(torch.randn(3, 12))
    assert images.shape == (3, channels, resolution, resolution)
    assert images.abs().max() <= 1.0
    assert D(images).shape == (3,)


def test_layer_count_grows_with_resolution():
    cfg = ModelConfig(z_dim=8, g_channels=4, d_channels=4)
    convs = lambda m: sum(isinstance(x, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for x in m.modules())
    assert convs(Generator(cfg, 64, 3)) == convs(Generator(cfg, 32, 3)) + 1 == 5  # the DCGAN paper's 64-px G
    assert convs(Discriminator(cfg, 64, 3)) == 5


def test_width_doubles_towards_4x4_and_is_capped_at_8x():
    cfg = ModelConfig(z_dim=8, g_channels=2, d_channels=3)
    G = Generator(cfg, 256, 3)
    first = G.net[0]
    assert first.out_channels == 2 * 8  # 32x would be 2 * 32 without the cap
    D = Discriminator(cfg, 256, 3)
    widths = [m.out_channels for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [3, 6, 12, 24, 24, 24, 1]


def test_dcgan_initialisation():
    torch.manual_seed(0)
    G = Generator(ModelConfig(g_channels=32), 32, 3)
    weights = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(weights.std().item() - 0.02) < 0.002
    assert abs(weights.mean().item()) < 0.002


def test_ema_moves_towards_model_and_warms_up():
    cfg = ModelConfig(z_dim=4, g_channels=2)
    model, ema = Generator(cfg, 16, 1), Generator(cfg, 16, 1)
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, model, 0.9)
    for old, new, target in zip(before, ema.parameters(), model.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * target)
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.999) == 0.999


def test_refresh_batchnorm_stats_measures_the_generator_itself():
    torch.manual_seed(0)
    G = Generator(ModelConfig(z_dim=4, g_channels=2), 16, 1)
    batches = [torch.randn(32, 4) for _ in range(3)]
    refresh_batchnorm_stats(G, [(z,) for z in batches])
    assert not G.training
    first_norm = G.net[1]
    # The first BatchNorm sees the first ConvTranspose's output: its running mean is the mean over all batches.
    with torch.no_grad():
        features = torch.cat([G.net[0](z.view(32, 4, 1, 1)) for z in batches])
    torch.testing.assert_close(first_norm.running_mean, features.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)
    assert first_norm.momentum == 0.1  # restored after the cumulative average


def test_conditional_generator_and_projection_discriminator_use_the_class():
    torch.manual_seed(0)
    cfg = ModelConfig(z_dim=8, g_channels=4, d_channels=4)
    G, D = Generator(cfg, 16, 3, num_classes=3), Discriminator(cfg, 16, 3, num_classes=3)
    G.eval(), D.eval()
    z = torch.randn(1, 8).repeat(3, 1)
    images = G(z, torch.tensor([0, 1, 2]))
    assert not torch.allclose(images[0], images[1])  # same noise, different class, different image
    same = images[:1].repeat(3, 1, 1, 1)
    logits = D(same, torch.tensor([0, 1, 2]))
    assert logits.shape == (3,) and not torch.allclose(logits[0], logits[1])


def test_spectral_norm_discriminator_has_no_batchnorm_and_unit_spectral_norm():
    torch.manual_seed(0)
    D = Discriminator(ModelConfig(d_channels=8, spectral_norm="on"), 32, 3)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    D.train()
    for _ in range(20):  # power iterations converge while training
        D(torch.randn(4, 3, 32, 32))
    conv = D.features[2]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)
    x = torch.randn(1, 3, 32, 32)
    D.eval()
    assert torch.allclose(D(x), D(torch.cat([x, torch.randn(3, 3, 32, 32)]))[:1], atol=1e-5)  # per-image output


def test_conditional_batchnorm_generator_steps_every_block_by_the_class():
    torch.manual_seed(0)
    cfg = ModelConfig(z_dim=8, g_channels=4, d_channels=4, g_conditioning="cbn")
    G = Generator(cfg, 16, 3, num_classes=3).eval()
    z = torch.randn(1, 8).repeat(3, 1)
    with torch.no_grad():
        for norm in (m for m in G.modules() if hasattr(m, "shift")):
            norm.shift.weight.normal_()  # as if trained: each class its own shift
        images = G(z, torch.arange(3))
    assert images.shape == (3, 3, 16, 16) and (images[0] - images[1]).abs().max() > 0.01
    assert G.embed is None and G.net[0].in_channels == 8  # the class enters through the norms, not z


def test_the_class_term_reads_the_projection_scores_of_every_class():
    cfg = ModelConfig(z_dim=8, g_channels=4, d_channels=4)
    D = Discriminator(cfg, 16, 3, num_classes=4).eval()
    images, labels = torch.randn(5, 3, 16, 16), torch.tensor([0, 1, 2, 3, 1])
    logits, scores = D(images, labels, classes=True)
    assert scores.shape == (5, 4) and torch.allclose(logits, D(images, labels), atol=1e-5)


def test_per_class_networks_give_each_row_to_its_own_class_member():
    torch.manual_seed(0)
    cfg = ModelConfig(z_dim=8, g_channels=4, d_channels=4, conditional="per-class", spectral_norm="on")
    G, D = generator(cfg, 16, 3, num_classes=3).eval(), discriminator(cfg, 16, 3, num_classes=3).eval()
    assert G.num_classes == 3 and G.z_dim == 8 and all(member.num_classes == 0 for member in G.members)
    z, labels = torch.randn(6, 8), torch.tensor([2, 0, 1, 2, 0, 0])
    with torch.no_grad():
        images, logits = G(z, labels), D(torch.randn(6, 3, 16, 16), labels)
        for i, c in enumerate(labels.tolist()):
            torch.testing.assert_close(images[i], G.members[c](z[i : i + 1])[0])
    assert images.shape == (6, 3, 16, 16) and logits.shape == (6,)
    assert [len(block) for block in D.blocks()] == [3 * len(block) for block in D.members[0].blocks()]


def test_a_per_class_member_learns_only_from_its_own_class():
    cfg = ModelConfig(z_dim=8, g_channels=4, d_channels=4, conditional="per-class")
    G = generator(cfg, 16, 3, num_classes=3)
    G(torch.randn(4, 8), torch.tensor([0, 2, 0, 2])).square().mean().backward()
    assert all(p.grad is None for p in G.members[1].parameters())
    assert all(p.grad is not None for p in G.members[0].parameters())


@pytest.mark.parametrize("conditioning", ["concat", "cbn"])
def test_transitional_conditioning_blends_the_class_in_from_none(conditioning):
    assert [class_strength_at(step, 8) for step in (0, 4, 6, 8, 20)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    torch.manual_seed(0)
    cfg = ModelConfig(z_dim=8, g_channels=4, d_channels=4, g_conditioning=conditioning)
    G, D = Generator(cfg, 16, 3, num_classes=3).eval(), Discriminator(cfg, 16, 3, num_classes=3).eval()
    with torch.no_grad():
        for norm in (m for m in G.modules() if hasattr(m, "shift")):
            norm.shift.weight.normal_()  # as if trained: each class its own shift
    z, images = torch.randn(1, 8).repeat(3, 1), torch.randn(1, 3, 16, 16).repeat(3, 1, 1, 1)
    full = G(z, torch.arange(3)), D(images, torch.arange(3))
    set_class_strength([G, D], 0.0)
    none = G(z, torch.arange(3)), D(images, torch.arange(3))
    assert torch.allclose(none[0][0], none[0][1]) and torch.allclose(none[1][0], none[1][2])  # the class is ignored
    assert not torch.allclose(full[0][0], full[0][1]) and not torch.allclose(full[1][0], full[1][2])
    assert "class_strength" not in G.state_dict()  # built at full strength: checkpoints are unchanged
