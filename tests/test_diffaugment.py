import pytest
import torch

from gan.diffaugment import AugmentProbability, diff_augment
from gan.config import parse_policy


def images(batch: int = 8, size: int = 16) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(batch, 3, size, size) * 2 - 1


def run(x, policy, p, seed=0):
    return diff_augment(x, parse_policy(policy), torch.tensor(p), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("policy", ["translation", "cutout", "color", "flip", "translation,cutout,color,flip"])
def test_shape_kept_and_p0_is_identity(policy):
    x = images()
    assert run(x, policy, 1.0).shape == x.shape
    assert torch.equal(run(x, policy, 0.0), x)


def test_translation_shifts_whole_pixels_and_fills_with_grey():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0
    y = run(x, "translation", 1.0)
    assert torch.equal(y.sum((1, 2, 3)), x.sum((1, 2, 3)))  # a 4x4 block moved by at most 2 px stays inside
    assert set(y.unique().tolist()) <= {0.0, 1.0}  # whole pixels: no interpolation
    assert (y != x).any(dim=(1, 2, 3)).float().mean() > 0.5  # most images moved


def test_cutout_zeroes_a_quarter_of_the_image():
    y = run(torch.ones(32, 3, 16, 16), "cutout", 1.0)
    zeroed = (y == 0).all(1).float().mean((1, 2))  # fraction of pixels cut, per image
    assert zeroed.max() <= 0.25 + 1e-6 and zeroed.mean() > 0.1  # an 8x8 square, partly outside at the edges


def test_each_operation_applies_to_about_p_of_the_images():
    x = images(batch=2000, size=8)
    changed = (run(x, "flip", 0.3) != x).any(dim=(1, 2, 3)).float().mean()
    assert 0.25 < changed < 0.35


def test_gradients_reach_the_generator_through_every_operation():
    x = images().requires_grad_(True)
    run(x, "translation,cutout,color,flip", 1.0).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_same_generator_state_gives_the_same_augmentation():
    x = images()
    assert torch.equal(run(x, "translation,cutout,color", 0.5, seed=3), run(x, "translation,cutout,color", 0.5, seed=3))
    assert not torch.equal(run(x, "translation,cutout,color", 0.5, seed=3), run(x, "translation,cutout,color", 0.5, seed=4))


def test_adaptive_p_rises_while_d_overfits_and_falls_when_it_does_not():
    p = AugmentProbability(0.0, adaptive=True, target=0.6, batch_size=64, device=torch.device("cpu"))
    for _ in range(40):
        p.observe(torch.full((64,), 3.0))  # D sure that every real is real: r_t = 1
    assert p.rt.item() == 1.0 and p.p.item() == pytest.approx(10 * 64 * 4 / 100_000)
    raised = p.p.item()
    for _ in range(8):
        p.observe(torch.full((64,), -1.0))  # r_t = -1 < target
    assert p.p.item() < raised


def test_fixed_p_stays_and_state_round_trips():
    fixed = AugmentProbability(0.4, adaptive=False, target=0.6, batch_size=64, device=torch.device("cpu"))
    for _ in range(8):
        fixed.observe(torch.full((64,), 3.0))
    assert fixed.p.item() == pytest.approx(0.4) and fixed.rt.item() == 1.0
    adaptive = AugmentProbability(0.0, adaptive=True, target=0.6, batch_size=64, device=torch.device("cpu"))
    adaptive.load_state_dict(fixed.state_dict())
    assert adaptive.p.item() == pytest.approx(0.4) and adaptive.rt.item() == 1.0
    other_fixed = AugmentProbability(0.2, adaptive=False, target=0.6, batch_size=64, device=torch.device("cpu"))
    other_fixed.load_state_dict(fixed.state_dict())  # a fixed p given on resume wins over the saved one
    assert other_fixed.p.item() == pytest.approx(0.2) and other_fixed.rt.item() == 1.0


def test_unknown_operation_is_named():
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        parse_policy("translation,rotate")


def test_every_operation_allows_the_double_backward_of_r1():
    from gan.losses import gradient_penalty as r1_penalty

    weights = torch.randn(3, 16, 16, requires_grad=True)
    x = images().requires_grad_(True)
    seen = run(x, "translation,cutout,color,flip", 1.0)
    penalty = r1_penalty((seen * weights).sum((1, 2, 3)), x)
    penalty.backward()  # needs a derivative of every operation's backward (grid_sample has none)
    assert weights.grad is not None and weights.grad.abs().sum() > 0


@pytest.mark.parametrize("processes", [2, 4])
def test_each_process_augments_its_share_as_the_whole_batch_would(processes):
    x, policy, p = images(batch=8), parse_policy("translation,cutout,color,flip"), torch.tensor(0.5)
    whole = diff_augment(x, policy, p, torch.Generator().manual_seed(3))
    size = len(x) // processes
    for rank in range(processes):
        part = x[rank * size:(rank + 1) * size]
        mine = diff_augment(part, policy, p, torch.Generator().manual_seed(3), share=(rank, processes))
        assert torch.equal(mine, whole[rank * size:(rank + 1) * size])
