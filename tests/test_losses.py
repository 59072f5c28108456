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


def test_gradient_penalty_is_the_squared_input_gradient():
    from gan.losses import gradient_penalty

    weights = torch.randn(3, 4, 4, requires_grad=True)  # a linear D: its input gradient is `weights`
    x = torch.randn(5, 3, 4, 4).requires_grad_(True)
    penalty = gradient_penalty((x * weights).sum((1, 2, 3)), x)
    torch.testing.assert_close(penalty, weights.detach().square().sum())
    penalty.backward()  # create_graph: the penalty itself trains D
    torch.testing.assert_close(weights.grad, 2 * weights.detach())


def test_rpgan_losses_compare_each_real_with_its_paired_fake():
    from gan.losses import rpgan_d, rpgan_g

    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    softplus = torch.nn.functional.softplus
    torch.testing.assert_close(rpgan_d(real, fake), (softplus(torch.tensor(-1.0)) + softplus(torch.tensor(1.0))) / 2)
    torch.testing.assert_close(rpgan_g(fake, real), rpgan_d(real, fake))  # here the two mirror each other exactly
    torch.testing.assert_close(rpgan_d(real + 7, fake + 7), rpgan_d(real, fake))  # only differences count
    assert rpgan_d(torch.tensor([9.0]), torch.tensor([-9.0])) < 1e-3 < rpgan_g(torch.tensor([-9.0]), torch.tensor([9.0]))


def test_gradient_penalty_is_zero_where_d_is_flat():
    from gan.losses import gradient_penalty

    x = torch.randn(4, 3, 8, 8).requires_grad_(True)
    flat = (x * 0).sum((1, 2, 3)) + 5.0  # D ignores its input
    assert gradient_penalty(flat, x).item() == 0.0


def test_penalty_weight_falls_along_a_cosine_to_its_final_fraction():
    from gan.losses import penalty_weight

    assert penalty_weight(2.0, 0, 100, 0.1) == 2.0
    assert abs(penalty_weight(2.0, 50, 100, 0.1) - 2.0 * 0.55) < 1e-12
    assert abs(penalty_weight(2.0, 100, 100, 0.1) - 0.2) < 1e-12
    assert penalty_weight(2.0, 37, 100, 1.0) == 2.0  # final fraction 1: constant


def test_lecam_pulls_logits_towards_the_moving_averages_of_the_other_side():
    from gan.losses import LeCam

    lecam = LeCam()
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-2.0, -4.0])
    penalty = lecam.penalty(real, fake)
    # Averages after one update from 0 with decay 0.99: real 0.01 * 2 = 0.02, fake 0.01 * -3 = -0.03.
    torch.testing.assert_close(lecam.real, torch.tensor(0.02))
    torch.testing.assert_close(lecam.fake, torch.tensor(-0.03))
    expected = ((3.03**2 + 1.03**2) + (2.02**2 + 4.02**2)) / 2
    torch.testing.assert_close(penalty, torch.tensor(expected))
    # Logits already on the right side of the other kind's average cost nothing.
    assert lecam.penalty(torch.tensor([-1.0]), torch.tensor([1.0])).item() == 0.0
    restored = LeCam()
    restored.load_state_dict(lecam.state_dict())
    assert torch.equal(restored.real, lecam.real) and torch.equal(restored.fake, lecam.fake)
