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


def test_hinge_losses_ignore_logits_past_the_margin():
    from gan.losses import hinge_d, hinge_g

    assert hinge_d(torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])).item() == 0.0 + 0.25 + 0.0 + 0.5
    assert hinge_g(torch.tensor([1.0, 3.0])).item() == -2.0


def test_r1_penalty_is_the_squared_input_gradient():
    from gan.losses import r1_penalty

    weights = torch.randn(3, 4, 4, requires_grad=True)  # a linear D: its input gradient is `weights`
    x = torch.randn(5, 3, 4, 4).requires_grad_(True)
    penalty = r1_penalty((x * weights).sum((1, 2, 3)), x)
    torch.testing.assert_close(penalty, weights.detach().square().sum())
    penalty.backward()  # create_graph: the penalty itself trains D
    torch.testing.assert_close(weights.grad, 2 * weights.detach())
