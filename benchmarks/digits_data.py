"""The labelled digits benchmark's data: the 1,797 handwritten digits (8x8, 10 classes) that scikit-learn ships
inside its wheel (the UCI "Optical Recognition of Handwritten Digits" test set), written as 32-px PNGs in class
folders. Nothing is downloaded and nothing is committed: `pip install scikit-learn` brings the data.

    python benchmarks/digits_data.py --out /tmp/digits [--per-class 20] [--seed 0]

writes OUT/train/<digit>/ (per-class random digits of each class) and OUT/test/<digit>/ (all the others).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

RESOLUTION = 32


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) uint8 images (white ink on black, 0-255) and their (1797,) digits."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        sys.exit("the digits benchmark reads scikit-learn's bundled digits: pip install scikit-learn")
    digits = sklearn_digits()
    return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target


def write_split(out: Path, per_class: int, seed: int = 0) -> tuple[Path, Path]:
    """OUT/train: `per_class` random digits of each class; OUT/test: the rest. Returns both folders."""
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
                image.save(folder / str(digit) / f"digit{i:04d}.png")
    return train, test


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write train/ and test/ into (must not exist)")
    parser.add_argument("--per-class", type=int, default=20, help="training digits per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists: give a new folder")
    train, test = write_split(out, args.per_class, args.seed)
    print(f"wrote {train} and {test}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
