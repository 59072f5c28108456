"""The two forms of an image: uint8 pixels and the networks' floats in [-1, 1]."""

import torch

from gan.pixels import to_pixels, to_signed, to_uint8


def test_every_pixel_value_survives_the_round_trip():
    values = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    signed = to_signed(values)
    assert signed.dtype == torch.float32 and signed.min() == -1 and signed.max() == 1
    assert torch.equal(to_uint8(signed), values)


def test_values_beyond_the_range_are_clamped_and_rounded():
    assert to_uint8(torch.tensor([-3.0, -1.0, 0.0, 0.999, 5.0])).tolist() == [0, 0, 128, 255, 255]


def test_pixels_are_channels_last_and_one_channel_drops_its_axis():
    assert to_pixels(torch.zeros(2, 3, 4, 5)).shape == (2, 4, 5, 3)
    gray = to_pixels(torch.zeros(2, 1, 4, 5))
    assert gray.shape == (2, 4, 5) and gray.dtype.name == "uint8"
