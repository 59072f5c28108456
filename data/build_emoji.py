"""Rebuild data/emoji/ from the npm package emoji-datasource-twitter (run once by a maintainer, not at run time).

    npm pack emoji-datasource-twitter@16.0.0 && tar xzf emoji-datasource-twitter-16.0.0.tgz
    python data/build_emoji.py package data/emoji
"""

import json
import sys
from pathlib import Path

from PIL import Image

# Three visually distinct categories give a few hundred images in class folders.
CATEGORIES = {"Smileys & Emotion": "smileys", "Animals & Nature": "animals", "Food & Drink": "food"}


def main(package: Path, out: Path) -> None:
    emoji = json.loads((package / "emoji.json").read_text())
    for entry in emoji:
        folder = CATEGORIES.get(entry["category"])
        if folder is None or not entry.get("has_img_twitter"):
            continue
        src = package / "img" / "twitter" / "64" / entry["image"]
        rgba = Image.open(src).convert("RGBA")
        # Composite on white so the shipped data is plain RGB, like most users' photos.
        rgb = Image.new("RGB", rgba.size, "white")
        rgb.paste(rgba, mask=rgba.getchannel("A"))
        (out / folder).mkdir(parents=True, exist_ok=True)
        rgb.save(out / folder / entry["image"], optimize=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
