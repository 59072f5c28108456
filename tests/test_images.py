"""Decoding one file: reasons a file is skipped that the folder tests do not reach."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from PIL import Image

from gan.images import BadImage, decode, decode_or_reason


def test_a_float_tiff_holding_nan_is_skipped_with_the_reason(tmp_path):
    values = np.full((8, 8), 0.5, dtype=np.float32)
    values[2, 3], values[4, 4] = np.nan, np.inf
    path = tmp_path / "nan.tif"
    Image.fromarray(values, mode="F").save(path)
    with pytest.raises(BadImage, match=r"^holds 2 non-finite pixel values \(NaN or infinity\)$"):
        decode(str(path), 16, "white", 10**6)


def test_a_finite_float_tiff_still_decodes(tmp_path):
    path = tmp_path / "fine.tif"
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32), mode="F").save(path)
    pixels, gray, _ = decode(str(path), 16, "white", 10**6)
    assert gray and int(pixels[0, 0, 0]) == 128


def test_a_file_that_cannot_be_read_says_so(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    Image.new("RGB", (8, 8)).save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", refuse)
    assert decode_or_reason(str(path), 16, "white", 10**6).reason == (
        "cannot be read (Permission denied): fix its permissions to use it")
