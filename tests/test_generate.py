import torch

from gan.generate import noise_for_seeds


def test_truncation_bounds_every_coordinate_and_repeats_by_seed():
    plain = noise_for_seeds([1, 2, 3], 200)
    truncated = noise_for_seeds([1, 2, 3], 200, truncation=0.5)
    assert truncated.abs().max() <= 0.5 and plain.abs().max() > 0.5
    assert torch.equal(truncated, noise_for_seeds([1, 2, 3], 200, truncation=0.5))  # the same seeds, the same noise
    assert torch.equal(truncated[1], noise_for_seeds([2], 200, truncation=0.5)[0])  # each row depends on its seed only
    inside = plain.abs() <= 0.5
    assert torch.equal(truncated[inside], plain[inside])  # only the coordinates outside are drawn again
    assert torch.equal(noise_for_seeds([1], 200, truncation=0.0), plain[:1])  # 0: off
