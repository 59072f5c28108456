import pytest
import torch

from gan.classical import ROTATE_DEGREES, apply_op, augment_image, batch_augmenter, describe
from gan.command_config import CLASSICAL_OPS, parse_ops


def image(channels: int = 3, size: tuple[int, int] = (60, 90), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (channels, *size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("op", CLASSICAL_OPS)
def test_every_op_keeps_size_channels_and_dtype(op, channels):
    source = image(channels)
    variant, applied = augment_image(source, (op,), 1.0, torch.Generator().manual_seed(1))
    assert variant.shape == source.shape and variant.dtype == torch.uint8
    assert [name for name, _ in applied] == [op]  # a lone op is always applied: a variant is never a plain copy
    assert not torch.equal(variant, source)
    assert torch.equal(apply_op(source, op, applied[0][1]), variant)  # the recorded parameters make it again


def test_variants_repeat_from_their_seed_and_differ_between_seeds():
    source, ops = image(), CLASSICAL_OPS
    first, applied = augment_image(source, ops, 1.0, torch.Generator().manual_seed(5))
    again, applied_again = augment_image(source, ops, 1.0, torch.Generator().manual_seed(5))
    other, applied_other = augment_image(source, ops, 1.0, torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and applied == applied_again
    assert applied != applied_other


def test_ops_are_limited_to_the_chosen_ones_and_strength_scales_their_range():
    angles = []
    for seed in range(40):
        _, applied = augment_image(image(), ("rotate", "blur"), 0.5, torch.Generator().manual_seed(seed))
        assert {name for name, _ in applied} <= {"rotate", "blur"}
        angles += [params["degrees"] for name, params in applied if name == "rotate"]
    assert angles and max(abs(a) for a in angles) <= ROTATE_DEGREES * 0.5


def test_the_manifest_description_names_ops_and_parameters():
    assert describe([("rotate", {"degrees": 3.5}), ("flip", {})]) == "rotate(degrees=3.5) flip()"


def test_batch_augmenter_makes_a_fresh_variant_of_each_image():
    batch = torch.stack([image(seed=1)] * 4)
    augmented = batch_augmenter(("brightness", "translate"), 1.0, torch.Generator().manual_seed(0))(batch)
    assert augmented.shape == batch.shape and not torch.equal(augmented[0], augmented[1])


def test_unknown_ops_are_named():
    with pytest.raises(ValueError, match="unknown operation 'shear': choose from rotate, crop"):
        parse_ops("rotate,shear")
    assert parse_ops(" flip , blur") == ("flip", "blur")
