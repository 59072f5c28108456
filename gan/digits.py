"""Labelled handwritten digits with nothing to download: the 1,797 8x8 digits (10 classes) that scikit-learn ships
inside its wheel (the test set of UCI's "Optical Recognition of Handwritten Digits"), written as 32-px PNGs in
class folders, for the demo and the benchmarks. scikit-learn is optional: only this module needs it.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from gan.errors import GanError

RESOLUTION = 32


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) uint8 images (white ink on black, 0-255) and their (1797,) digits."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise GanError("the digits are read from scikit-learn, which ships them inside its wheel: pip install "
                       "scikit-learn (make demo installs it)") from None
    digits = sklearn_digits()
    return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target


def in_colour(image: Image.Image, rng: random.Random) -> Image.Image:
    """A grayscale digit as ink of a random colour on a background of another, turned by up to 15 degrees: a
    set whose style (colour, slant) varies far more than its classes do, as photos of real things do."""
    ink, paper = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
    while sum(abs(a - b) for a, b in zip(ink, paper)) < 200:  # legible: ink and paper far apart
        ink = tuple(rng.randrange(256) for _ in range(3))
    turned = image.rotate(rng.uniform(-15, 15), Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", image.size, ink), Image.new("RGB", image.size, paper), turned)


def write_split(out: Path, per_class: int, seed: int = 0, colour: bool = False) -> tuple[Path, Path]:
    """OUT/train: `per_class` random digits of each class; OUT/test: the rest (`colour`: see `in_colour`).
    Returns both folders."""
    images, targets = load_digits()
    rng = random.Random(seed)
    train, test = out / "train", out / "test"
    for digit in range(10):
        indices = [int(i) for i in np.flatnonzero(targets == digit)]
        rng.shuffle(indices)
        for folder, chosen in ((train, indices[:per_class]), (test, indices[per_class:])):
            (folder / str(digit)).mkdir(parents=True, exist_ok=True)
            for i in chosen:
                # Bilinear, not the loader's Lanczos: 8x8 -> 32x32 with Lanczos rings around every stroke.
                image = Image.fromarray(images[i]).resize((RESOLUTION, RESOLUTION), Image.Resampling.BILINEAR)
                if colour:
                    image = in_colour(image, rng)
                image.save(folder / str(digit) / f"digit{i:04d}.png")
    return train, test
