"""Write docs/flags.md, the flag reference, from the flags themselves."""

from pathlib import Path

from gan.cli import flag_reference
from gan.files import write_text

if __name__ == "__main__":
    write_text(Path(__file__).resolve().parent.parent / "docs" / "flags.md", flag_reference())
