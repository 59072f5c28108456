import builtins
import random

import numpy as np
import pytest
from PIL import Image

from gan.digits import in_colour, write_split
from gan.errors import GanError


def test_without_scikit_learn_the_digits_say_how_to_get_them(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(GanError, match="pip install scikit-learn"):
        write_split(tmp_path / "digits", 2)
    assert not (tmp_path / "digits").exists()


def test_the_split_holds_every_digit_once_per_class_folder(tmp_path):
    pytest.importorskip("sklearn")
    train, test = write_split(tmp_path / "digits", 3)
    assert sorted(p.name for p in train.iterdir()) == [str(d) for d in range(10)]
    assert all(len(list((train / str(d)).iterdir())) == 3 for d in range(10))
    names = {p.name for p in train.rglob("*.png")} | {p.name for p in test.rglob("*.png")}
    assert len(names) == 1797 and Image.open(next(train.rglob("*.png"))).size == (32, 32)


def test_a_digit_in_colour_keeps_its_shape_in_two_far_apart_colours():
    digit = Image.new("L", (32, 32))
    digit.paste(255, (12, 4, 20, 28))  # a '1'
    coloured = np.asarray(in_colour(digit, random.Random(0)), dtype=int)
    ink, paper = coloured[16, 16], coloured[2, 2]
    assert coloured.shape == (32, 32, 3) and np.abs(ink - paper).sum() >= 200
