"""The two forms an image takes: uint8 pixels, as files and the data cache hold them, and floats in [-1, 1], as the
networks see them. Every conversion goes through here, so a saved file and a scored sample hold the same values."""

from __future__ import annotations

import numpy as np
import torch


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> floats in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [-1, 1] -> the same uint8 values a saved image file holds."""
    return images.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) floats in [-1, 1] -> (B, H, W, C) uint8, or (B, H, W) for one channel."""
    pixels = to_uint8(images).permute(0, 2, 3, 1).numpy()
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels
