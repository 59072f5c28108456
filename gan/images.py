"""Decode one image file into a square uint8 RGB array: the only place that knows about image modes and formats.

Pure PIL and numpy (no torch) so decoding worker processes start quickly.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image, ImageColor, ImageOps

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FORMATS = "PNG, JPEG, WebP, BMP, GIF, TIFF"

# Modes with more than 8 bits per channel, and the value that maps to white.
_HIGH_DEPTH_WHITE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


class BadImage(Exception):
    """A file that cannot be used; the message is a short reason for the skip report."""


class Decoded(NamedTuple):
    pixels: np.ndarray | None  # (resolution, resolution, 3) uint8, None when skipped
    gray: bool
    upscaled: bool
    reason: str | None  # why the file was skipped


def decode_or_reason(path: str, resolution: int, background: str, max_pixels: int) -> Decoded:
    """`decode` for a worker process: a bad file comes back as a reason instead of an exception."""
    try:
        return Decoded(*decode(path, resolution, background, max_pixels), reason=None)
    except BadImage as bad:
        return Decoded(None, False, False, str(bad))
    except Exception as error:  # a malformed file can make a format plugin raise anything; skip it, never crash
        return Decoded(None, False, False, f"cannot be decoded ({type(error).__name__}: {error})")


def decode_each(decode: Callable[[str], Decoded], paths: list[str]) -> list[Decoded]:
    """One task for a decoding worker process: here, so that the worker imports no torch (seconds per process)."""
    return [decode(path) for path in paths]


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


def decode(path: str, resolution: int, background: str, max_pixels: int) -> tuple[np.ndarray, bool, bool]:
    """Read `path` as a (resolution, resolution, 3) uint8 array; also say whether it is grayscale and was upscaled."""
    rgb, gray = open_rgb(path, background, max_pixels, draft=resolution)
    upscaled = min(rgb.size) < resolution
    fitted = ImageOps.fit(rgb, (resolution, resolution), method=Image.Resampling.LANCZOS)
    return np.asarray(fitted, dtype=np.uint8), gray, upscaled


def open_rgb(path: str, background: str, max_pixels: int, draft: int | None = None) -> tuple[Image.Image, bool]:
    """Read `path` as an 8-bit RGB image, upright, at full size (or, for JPEG, reduced while its sides stay at
    least `draft`); also say whether it is grayscale. Raises BadImage with a short reason."""
    _check_regular_file(path)
    # Pillow's process-wide bomb check would override --max-pixels; the header check below replaces it.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            width, height = image.size  # from the header, before any pixel is decoded
            if width * height > max_pixels:
                raise BadImage(f"{width}x{height} is larger than the pixel limit {max_pixels} (raise --max-pixels)")
            if draft:
                image.draft("RGB", (draft, draft))  # JPEG: decode at a reduced scale, still >= draft
            image.seek(0)  # first frame of an animated GIF/WebP/TIFF
            return _to_rgb(ImageOps.exif_transpose(image), ImageColor.getrgb(background))
    except Image.UnidentifiedImageError:
        raise BadImage(f"not an image (or not one of {FORMATS})") from None
    except PermissionError as error:
        raise BadImage(f"cannot be read ({error.strerror}): fix its permissions to use it") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        reason = "truncated file" if "truncated" in str(error) else f"cannot be decoded ({error})"
        raise BadImage(reason) from None


def _check_regular_file(path: str) -> None:
    """Refuse, before opening it, what is not an image's bytes: a pipe would block the read forever, a device
    never end."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadImage("a link to a file that does not exist (any more)") from None
    except OSError as error:
        raise BadImage(f"cannot be read ({error.strerror}): fix its permissions to use it") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadImage("not a regular file (a pipe, a device or a socket): remove it or link a real image")
    if info.st_size == 0:
        raise BadImage("empty file (0 bytes)")


def _to_rgb(image: Image.Image, background: tuple) -> tuple[Image.Image, bool]:
    """Convert any PIL mode to 8-bit RGB (alpha composited on `background`); say whether the source was grayscale."""
    image.load()  # raises on truncated data, here rather than later
    if image.mode in _HIGH_DEPTH_WHITE or image.mode == "F":
        return _high_depth_to_rgb(image), True
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background[:3])
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        # Judged after compositing: colour left under fully transparent pixels is invisible, so it does not count.
        return canvas, image.mode in ("LA", "La") or _is_gray(canvas)
    if image.mode in ("1", "L"):
        return image.convert("L").convert("RGB"), True
    rgb = image.convert("RGB")  # RGB, P, CMYK (Adobe-inverted handled by the decoder), YCbCr, LAB, HSV
    return rgb, _is_gray(rgb)


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grayscale: scale to 0..255 (clipping would turn most 16-bit images white). Values
    outside the ranges images use (0..1 or 0..255 for floats, 0..65535 for integers) have no meaning we could
    guess: clipped, they would become a two-level black-and-white picture, so the file is skipped instead."""
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():  # NaN would become black, silently
        raise BadImage(f"holds {np.count_nonzero(~np.isfinite(values))} non-finite pixel values (NaN or infinity)")
    low, high = values.min(initial=0.0), values.max(initial=0.0)
    ranges = (1.0, 255.0) if image.mode == "F" else (_HIGH_DEPTH_WHITE[image.mode],)
    white = next((top for top in ranges if low >= 0 and high <= top), None)
    if white is None:
        allowed = " or ".join(f"0..{top:g}" for top in ranges)
        raise BadImage(f"pixel values from {low:g} to {high:g}, outside {allowed}: scale them into that range (or "
                       f"save it as an 8- or 16-bit image) to use it")
    scaled = np.clip(np.rint(values * (255.0 / white)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L").convert("RGB")


def _is_gray(rgb: Image.Image) -> bool:
    """True when an RGB image carries no colour (R == G == B everywhere), e.g. a scan saved as RGB."""
    pixels = np.asarray(rgb.resize((64, 64)) if max(rgb.size) > 64 else rgb)
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())

