import pytest
import torch

from gan.classical import augment_image
from gan.command_config import CLASSICAL_OPS, GrowConfig, SampleConfig, ValueConfig
from gan.errors import GanError


def test_sample_config_needs_one_source_and_an_output():
    with pytest.raises(GanError, match="give --run DIR .* or --checkpoint FILE"):
        SampleConfig(out="x").validate()
    with pytest.raises(GanError, match="give --run DIR"):
        SampleConfig(checkpoint="last", out="x").validate()
    SampleConfig(checkpoint="some/checkpoint.pt", out="x").validate()
    SampleConfig(run="r", checkpoint="best", out="x").validate()
    with pytest.raises(GanError, match="--out is required"):
        SampleConfig(run="r").validate()


def test_seeds_are_bounded_so_derived_streams_fit_in_64_bits():
    with pytest.raises(GanError, match="--seed must be between 0 and"):
        SampleConfig(run="r", out="o", seed=-1).validate()


@pytest.mark.parametrize("name, value, message", [("seeds", 10**12, r"--seeds must be in \[1, 100\]"),
                                                  ("epochs", 10**12, r"--epochs must be in \[1, 10000\]")])
def test_gan_value_work_is_bounded_before_it_starts(name, value, message):
    cfg = ValueConfig(train="t", test="v", out="o")
    setattr(cfg, name, value)
    with pytest.raises(GanError, match=message):
        cfg.validate()


def test_gan_grow_names_an_unknown_classical_operation():
    with pytest.raises(GanError, match="--ops: .*wobble"):
        GrowConfig(data="d", out="o", ops="rotate,wobble").validate()


def test_each_classical_operation_has_code_of_its_own():
    """An operation added to CLASSICAL_OPS without its code would fall through to another's and repeat its image."""
    pixels = (torch.arange(3 * 16 * 16) % 251).to(torch.uint8).view(3, 16, 16)
    variants = []
    for op in CLASSICAL_OPS:  # the same draws for each
        variant, applied = augment_image(pixels, (op,), 1.0, torch.Generator().manual_seed(1))
        assert [name for name, _ in applied] == [op]
        variants.append(variant)
    assert all(not torch.equal(a, b) for i, a in enumerate(variants) for b in variants[i + 1:])
