"""Classical augmentation: the bar a GAN has to beat. Rotation, crop, blur, rescale, translation, flips, brightness
and contrast, with parameters drawn explicitly (so every variant can be written down and made again) and applied
with torchvision's transforms v2 functions. Works on uint8 image tensors (C, H, W) of any size.

Used by `gan augment` (variants of every image, written to disk) and by `gan value` (on the fly, while a
classifier trains).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import InterpolationMode

from gan.command_config import CLASSICAL_OPS as OPS

APPLY_P = 0.5  # each chosen op hits each variant with this probability (and every variant gets at least one)

# Ranges at --strength 1, chosen to keep a photo plausible; the strength scales each one.
ROTATE_DEGREES = 15.0  # +-
CROP_KEEP = 0.75  # the crop keeps at least this fraction of the area
BLUR_SIGMA = 1.2  # at most, in pixels per 100 px of the image's shorter side
SCALE = 0.15  # zoom in or out by up to 15%
TRANSLATE = 0.1  # up to 10% of the size
BRIGHTNESS = 0.25  # factor in [1 - 0.25, 1 + 0.25]
CONTRAST = 0.25


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _params(op: str, size: tuple[int, int], strength: float, g: torch.Generator) -> dict:
    """The random parameters of one op for an image of `size` (H, W), rounded so a manifest can hold them."""
    h, w = size
    if op == "rotate":
        return {"degrees": round(_uniform(g, -1, 1) * ROTATE_DEGREES * strength, 2)}
    if op == "crop":
        keep = max(0.05, 1 - (1 - CROP_KEEP) * strength)
        area = _uniform(g, keep, 1.0)
        ch, cw = max(1, round(h * math.sqrt(area))), max(1, round(w * math.sqrt(area)))
        return {"top": int(torch.randint(h - ch + 1, (), generator=g)),
                "left": int(torch.randint(w - cw + 1, (), generator=g)), "height": ch, "width": cw}
    if op == "blur":
        sigma = _uniform(g, 0.1, max(0.1, BLUR_SIGMA * strength)) * min(h, w) / 100
        return {"sigma": max(0.001, round(sigma, 3))}
    if op == "scale":
        return {"factor": round(1 + _uniform(g, -1, 1) * SCALE * strength, 3)}
    if op == "translate":
        return {"dx": round(_uniform(g, -1, 1) * TRANSLATE * strength * w), "dy": round(_uniform(g, -1, 1) * TRANSLATE * strength * h)}
    if op == "flip":
        return {}
    spread = BRIGHTNESS if op == "brightness" else CONTRAST
    return {"factor": round(1 + _uniform(g, -1, 1) * spread * strength, 3)}


def _border_fill(image: torch.Tensor) -> list[float]:
    """The mean colour of the image's edge: what rotated-in corners are filled with (black corners would be a
    feature a classifier could learn)."""
    edge = torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], 1).float()
    return edge.mean(1).tolist()


def apply_op(image: torch.Tensor, op: str, p: dict) -> torch.Tensor:
    """One op with its parameters on a uint8 (C, H, W) tensor; the result has the same size."""
    h, w = image.shape[-2:]
    bilinear = InterpolationMode.BILINEAR
    if op == "rotate":
        return F.rotate(image, p["degrees"], interpolation=bilinear, fill=_border_fill(image))
    if op == "crop":
        return F.resized_crop(image, p["top"], p["left"], p["height"], p["width"], [h, w], antialias=True)
    if op == "blur":
        radius = min(math.ceil(3 * p["sigma"]), min(h, w) - 1)  # the reflect padding needs radius < side
        return F.gaussian_blur(image, [2 * radius + 1] * 2, [p["sigma"]] * 2)
    if op in ("scale", "translate"):
        scale, shift = (p["factor"], [0, 0]) if op == "scale" else (1.0, [p["dx"], p["dy"]])
        return F.affine(image, angle=0.0, translate=shift, scale=scale, shear=[0.0, 0.0], interpolation=bilinear,
                        fill=_border_fill(image))
    if op == "flip":
        return F.horizontal_flip(image)
    if op == "brightness":
        return F.adjust_brightness(image, p["factor"])
    return F.adjust_contrast(image, p["factor"])


def augment_image(image: torch.Tensor, ops: tuple[str, ...], strength: float,
                  generator: torch.Generator) -> tuple[torch.Tensor, list[tuple[str, dict]]]:
    """A random variant of a uint8 (C, H, W) image: each op applied with probability APPLY_P, at least one, in
    the order of OPS. Returns the variant and the (op, parameters) applied."""
    chosen = [op for op in ops if float(torch.rand((), generator=generator)) < APPLY_P]
    if not chosen:  # an unchanged copy is no variant
        chosen = [ops[int(torch.randint(len(ops), (), generator=generator))]]
    applied = []
    for op in sorted(chosen, key=OPS.index):
        params = _params(op, tuple(image.shape[-2:]), strength, generator)
        image = apply_op(image, op, params)
        applied.append((op, params))
    return image, applied


def describe(applied: list[tuple[str, dict]]) -> str:
    """'rotate(degrees=3.2) blur(sigma=0.41)': the manifest's record of a variant."""
    return " ".join(f"{op}({', '.join(f'{k}={v}' for k, v in params.items())})" for op, params in applied)


def batch_augmenter(ops: tuple[str, ...], strength: float,
                    generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """augment(batch) for on-the-fly use: a fresh variant of every uint8 image in a (B, C, H, W) batch."""
    def augment(batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([augment_image(image, ops, strength, generator)[0] for image in batch])

    return augment
