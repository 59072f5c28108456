"""The labelled digits benchmark's data (gan.digits): the 1,797 handwritten digits that scikit-learn ships inside its
wheel, as 32-px PNGs in class folders. Nothing is downloaded and nothing is committed: `pip install scikit-learn`
brings the data.

    python benchmarks/digits_data.py --out /tmp/digits [--per-class 20] [--seed 0]

writes OUT/train/<digit>/ (per-class random digits of each class) and OUT/test/<digit>/ (all the others).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan.digits import write_split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write train/ and test/ into (must not exist)")
    parser.add_argument("--per-class", type=int, default=20, help="training digits per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split")
    parser.add_argument("--colour", action="store_true", help="random ink and paper colours, slanted (see gan.digits.in_colour)")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists: give a new folder")
    train, test = write_split(out, args.per_class, args.seed, args.colour)
    print(f"wrote {train} and {test}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
