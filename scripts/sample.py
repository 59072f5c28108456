"""`gan sample` as a script: python scripts/sample.py --help"""

import sys

from gan.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
