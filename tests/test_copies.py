"""Copy detection: the detector's nearest training image and its base rate, and gan value's near-copy check."""

import pytest
import torch

from gan.copies import COPY_FRACTION, CopyDetector, near_copies


def cloud(n: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def test_a_planted_training_image_is_caught_as_a_copy():
    train_features, train_pixels = cloud(40), cloud(40, dim=12, seed=1)
    detector = CopyDetector(train_features, train_pixels)
    features, pixels = cloud(10, seed=2), cloud(10, dim=12, seed=3)
    features[4], pixels[4] = train_features[17], train_pixels[17]
    found = detector.nearest(features, pixels)
    assert found.copies.tolist() == [i == 4 for i in range(10)]
    assert found.feature_index[4] == 17 and found.feature_distance[4] < 1e-6 and found.pixel_index[4] == 17
    assert (found.feature_ratio[found.copies.logical_not()] > COPY_FRACTION).all()


def test_near_duplicates_in_the_training_data_set_the_base_rate():
    train = cloud(20)
    assert CopyDetector(train, train).real_copy_rate == 0.0
    train[7] = train[3]  # a duplicate pair
    detector = CopyDetector(train, train)
    assert detector.real_copy_rate == pytest.approx(2 / 20)
    near_copy = train[3:4] + 0.01  # of a duplicated image: its threshold comes from its nearest *other* image
    assert detector.nearest(near_copy, near_copy).copies.item()


def test_distinct_images_are_not_near_copies():
    images = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    images[1, :, :8, :8] = 120  # one corner cell differs
    images[2, 0] = 30  # a faint red cast all over
    assert near_copies(images[1:], images[:1]) == [None, None]
    assert near_copies(images[:1], images) == [0]
