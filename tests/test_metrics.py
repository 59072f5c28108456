import pytest
import torch

from gan.errors import GanError
from gan.metrics import distribution_metrics, fid_kid, neighbours, precision_recall


def cloud(n: int, dim: int = 8, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


def test_identical_sets_score_zero_and_a_shifted_set_scores_worse():
    real = cloud(400)
    same = distribution_metrics(real, real.clone())
    near, far = fid_kid(real, cloud(400, shift=0.2, seed=1)), fid_kid(real, cloud(400, shift=1.0, seed=1))
    assert abs(same["fid"]) < 1e-6 and same["precision"] == 1.0 and same["recall"] == 1.0
    # KID's unbiased estimate of a set against itself sits a little below 0 (its kernel's diagonal is left out).
    assert abs(same["kid"]) < 0.05 * far["kid"] and abs(same["kid"]) < near["kid"]
    assert far["fid"] > near["fid"] > same["fid"] and far["kid"] > near["kid"]
    independent = fid_kid(real, cloud(400, seed=5))  # the same distribution, drawn again
    assert abs(independent["kid"]) < near["kid"] / 4


def test_precision_and_recall_tell_quality_from_diversity():
    real = cloud(300)
    collapsed = real[:5].repeat(60, 1) + 0.01 * cloud(300, seed=2)  # realistic, but only five modes
    off_manifold = cloud(300, shift=6.0, seed=3)  # varied, but nothing like the data
    collapsed_pr, off_pr = precision_recall(real, collapsed), precision_recall(real, off_manifold)
    assert collapsed_pr["precision"] > 0.9 and collapsed_pr["recall"] < 0.2
    assert off_pr["precision"] < 0.05


def test_small_sets_adapt_instead_of_crashing():
    scores = distribution_metrics(cloud(3), cloud(4, seed=1))  # KID subsets of 3, k = 2
    assert all(torch.isfinite(torch.tensor(v)) for v in scores.values())
    assert fid_kid(cloud(60), cloud(60, shift=0.5, seed=1))["kid_std"] > 0  # subsets of half: a real spread
    with pytest.raises(GanError, match="at least 2 real and 2 generated images"):
        distribution_metrics(cloud(1), cloud(5))


def test_kid_is_repeatable_and_leaves_the_global_random_state_alone():
    real, fake = cloud(100), cloud(120, shift=0.3, seed=1)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = fid_kid(real, fake)
    assert torch.rand(1) == expected_next
    assert fid_kid(real, fake) == first


def test_neighbours_match_brute_force_and_can_exclude_self():
    a, b = cloud(50), cloud(2000, seed=1)  # more rows than one distance block
    distances, indices = neighbours(a, b, k=2)
    brute = torch.cdist(a.double(), b.double()).topk(2, 1, largest=False)
    assert torch.equal(indices, brute.indices) and torch.allclose(distances, brute.values)
    _, own = neighbours(b, b, exclude_self=True)
    assert not (own[:, 0] == torch.arange(len(b))).any()
