import torch

from gan.losses import nonsaturating_d as d_loss, nonsaturating_g as g_loss


def test_losses_match_the_bce_definitions():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.2, 1.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected_d = bce(real, torch.ones(3)) + bce(fake, torch.zeros(3))
    torch.testing.assert_close(d_loss(real, fake), expected_d)
    torch.testing.assert_close(g_loss(fake), bce(fake, torch.ones(3)))


def test_losses_stay_finite_for_extreme_logits():
    huge = torch.tensor([1e4, -1e4])
    assert torch.isfinite(d_loss(huge, -huge)) and torch.isfinite(g_loss(huge))
    fake = torch.tensor([-50.0], requires_grad=True)
    g_loss(fake).backward()
    assert fake.grad.abs().item() > 0.9  # non-saturating: a confident D still gives G a gradient
