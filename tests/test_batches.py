"""The real batches the training loop consumes: values, epochs, class balance, mirroring, exact state, shares."""

from __future__ import annotations

import pytest
import torch

from helpers import write_images
from gan.batches import RealBatches
from gan.config import DataConfig
from gan.data import ImageDataset, load_dataset
from gan.errors import GanError


def load(folder, tmp_path) -> ImageDataset:
    return load_dataset(DataConfig(path=str(folder), resolution=16, workers=1, cache=False,
                                   cache_dir=str(tmp_path / "cache")), log=lambda _: None)


def numbered_dataset(count: int, size: int = 4) -> ImageDataset:
    """Image i is left-right asymmetric and its label is i, so a batch says which images (and flips) it holds."""
    images = torch.zeros(count, 3, size, size, dtype=torch.uint8)
    for i in range(count):
        images[i] = i * 10
        images[i, :, :, 0] = 255  # a bright left column: a flip moves it to the right
    return ImageDataset(images=images, labels=torch.arange(count), class_names=[str(i) for i in range(count)],
                        files=[f"{i}.png" for i in range(count)])


def batches(count: int, batch_size: int, mirror: bool = False, seed: int = 0) -> RealBatches:
    generator = torch.Generator().manual_seed(seed)
    return RealBatches(numbered_dataset(count), batch_size, mirror, False, generator, torch.device("cpu"))


def test_batches_from_a_loaded_folder_are_floats_in_minus_one_to_one(flat_folder, tmp_path):
    dataset, _ = (load(flat_folder, tmp_path), None)
    real = RealBatches(dataset, 4, False, False, torch.Generator().manual_seed(0), torch.device("cpu"))
    for _ in range(5):
        images, labels = next(real)
        assert images.shape == (4, 3, 16, 16)
        assert images.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1
        assert labels.shape == (4,) and labels.dtype == torch.int64


def test_batch_values_are_the_images_scaled_to_minus_one_to_one():
    real = batches(6, 6)
    images, labels = next(real)
    source = numbered_dataset(6).images
    expected = source[labels].float() / 127.5 - 1
    assert torch.allclose(images, expected)
    index = labels.tolist().index(0)
    assert images[index, 0, 0, 0].item() == 1.0 and images[index, 0, 0, 1].item() == -1.0  # 255 -> 1, 0 -> -1


def test_dataset_smaller_than_the_batch_still_gives_full_batches():
    real = batches(3, 8)
    seen = []
    for _ in range(3):
        images, labels = next(real)
        assert images.shape == (8, 3, 4, 4) and labels.shape == (8,)
        seen += labels.tolist()
    assert sorted(seen) == [0] * 8 + [1] * 8 + [2] * 8  # 24 draws = 8 whole epochs of 3 images
    for epoch in range(8):
        assert sorted(seen[epoch * 3 : epoch * 3 + 3]) == [0, 1, 2]


def test_every_epoch_covers_every_image_once():
    real = batches(12, 4)
    epochs = []
    for _ in range(3):
        epoch = torch.cat([next(real)[1] for _ in range(3)]).tolist()
        assert sorted(epoch) == list(range(12))
        epochs.append(epoch)
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch


def test_epoch_boundary_inside_a_batch_finishes_the_epoch_first():
    real = batches(10, 4)
    draws = torch.cat([next(real)[1] for _ in range(5)]).tolist()  # 20 draws = 2 epochs, batch 3 straddles them
    assert sorted(draws[:10]) == list(range(10))
    assert sorted(draws[10:]) == list(range(10))


def test_state_dict_reproduces_the_following_batches_exactly():
    original = batches(10, 4, mirror=True, seed=0)
    for _ in range(2):
        next(original)  # mid-epoch
    state = original.state_dict()
    expected = [next(original) for _ in range(6)]  # crosses two epoch boundaries

    resumed = batches(10, 4, mirror=True, seed=12345)
    resumed.load_state_dict(state)
    for want, (images, labels) in zip(expected, (next(resumed) for _ in range(6))):
        assert torch.equal(want[0], images)
        assert torch.equal(want[1], labels)

    again = batches(10, 4, mirror=True, seed=999)
    again.load_state_dict(state)  # loading does not consume or alias the saved state
    assert torch.equal(next(again)[0], expected[0][0])


def test_state_dict_from_a_different_dataset_size_is_refused():
    state = batches(10, 4).state_dict()
    with pytest.raises(GanError) as error:
        batches(8, 4).load_state_dict(state)
    assert str(error.value) == (
        "the data folder now has 8 usable images but the checkpoint was trained on 10; "
        "resume needs the same images (or start a new run)"
    )


def _flipped(images: torch.Tensor, labels: torch.Tensor, source: torch.Tensor) -> list[bool]:
    """For each batch image: False if it is its source image, True if it is the mirrored source; fail otherwise."""
    result = []
    for image, label in zip(images, labels):
        plain = source[label].float() / 127.5 - 1
        if torch.equal(image, plain):
            result.append(False)
        else:
            assert torch.equal(image, plain.flip(2)), "a batch image is neither its source nor its mirror"
            result.append(True)
    return result


def test_mirror_flips_some_images_horizontally():
    source = numbered_dataset(12).images
    real = batches(12, 12, mirror=True)
    flips = []
    for _ in range(4):
        images, labels = next(real)
        flips += _flipped(images, labels, source)
    assert 0 < sum(flips) < len(flips)
    assert 10 <= sum(flips) <= 38  # about half of 48

    plain = batches(12, 12, mirror=False)
    for _ in range(2):
        images, labels = next(plain)
        assert not any(_flipped(images, labels, source))


def test_class_balance_draws_every_class_equally_often(tmp_path):
    folder = tmp_path / "imbalanced"
    write_images(folder / "many", 30, size=(16, 16))
    write_images(folder / "few", 3, size=(16, 16), seed=5)
    dataset, _ = (load(folder, tmp_path), None)
    balanced = RealBatches(dataset, 500, False, True, torch.Generator().manual_seed(0), torch.device("cpu"))
    _, labels = next(balanced)
    share_of_few = (labels == dataset.class_names.index("few")).float().mean().item()
    assert 0.42 < share_of_few < 0.58  # 3 of 33 images, yet half of the draws
    plain = RealBatches(dataset, 33, False, False, torch.Generator().manual_seed(0), torch.device("cpu"))
    _, labels = next(plain)
    assert (labels == dataset.class_names.index("few")).sum().item() == 3  # one epoch: each image once


@pytest.mark.parametrize("class_balance", [False, True])
def test_the_processes_shares_of_a_batch_make_up_the_whole_batch(class_balance):
    dataset = numbered_dataset(10)

    def drawn(rows):
        real = RealBatches(dataset, 6, True, class_balance, torch.Generator().manual_seed(0), torch.device("cpu"),
                           rows)
        return [next(real) for _ in range(3)]  # 18 draws of 10 images: an epoch boundary inside a batch

    whole, parts = drawn(slice(None)), [drawn(slice(3 * rank, 3 * rank + 3)) for rank in range(2)]
    for step, (images, labels) in enumerate(whole):
        assert torch.equal(torch.cat([part[step][0] for part in parts]), images)
        assert torch.equal(torch.cat([part[step][1] for part in parts]), labels)
