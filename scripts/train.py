"""`gan train` as a script: python scripts/train.py --help"""

import sys

from gan.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
