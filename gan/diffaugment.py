"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020), applied with the
same function to real and generated batches, each operation to each image with probability p; and the adaptive
choice of p from the discriminator's overfitting signal (ADA, Karras et al. 2020).

Everything is batched tensor maths on the training device, so gradients flow through to the generator and no
host sync is needed: p itself is a device tensor.

With several training processes, each augments its share of the global batch: `share` is (rank, processes). Every
process draws the random numbers of the whole batch from the same stream and keeps its own rows, so an image is
augmented the same way however many processes train, and the stream's state is the same on all of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


Share = tuple[int, int]  # (this process's rank, number of processes)
WHOLE: Share = (0, 1)


def _per_image(draw, batch: int, share: Share) -> torch.Tensor:
    """`draw(n)` for the n images of the global batch, then this share's `batch` rows."""
    rank, processes = share
    return draw(batch * processes)[rank * batch:(rank + 1) * batch]


def _chosen(images: torch.Tensor, p: torch.Tensor, generator: torch.Generator, share: Share) -> torch.Tensor:
    """(B, 1, 1, 1) mask: which images this operation applies to."""
    draw = _per_image(lambda n: torch.rand(n, 1, 1, 1, device=images.device, generator=generator), len(images), share)
    return draw < p


def _translation(x: torch.Tensor, generator: torch.Generator, share: Share, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size, whole pixels, filling with zeros (mid-grey).

    A gather from a copy padded by one zero pixel (shifts past the edge land on the padding): much faster on the
    CPU than indexing with three index grids, and unlike grid_sample its backward has a derivative of its own, which R1
    needs (D's gradient passes through this function).
    """
    batch, channels, height, width = x.shape
    dy, dx = (
        _per_image(lambda b: torch.randint(-int(n * ratio + 0.5), int(n * ratio + 0.5) + 1, (b, 1, 1), device=x.device,
                                           generator=generator), batch, share)
        for n in (height, width)
    )
    rows = (torch.arange(height, device=x.device).view(1, -1, 1) + dy + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=x.device).view(1, 1, -1) + dx + 1).clamp(0, width + 1)
    source = (rows * (width + 2) + cols).view(batch, 1, -1).expand(batch, channels, -1)
    padded = F.pad(x, [1, 1, 1, 1]).flatten(2)  # (B, C, (H+2) * (W+2))
    return padded.gather(2, source).view(batch, channels, height, width)


def _cutout(x: torch.Tensor, generator: torch.Generator, share: Share, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of `ratio` of the image size at a random place in each image."""
    batch, _, height, width = x.shape
    centre = _per_image(lambda b: torch.rand(b, 2, 1, 1, device=x.device, generator=generator), batch, share)
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    in_rows = (rows - centre[:, 0] * height).abs() < height * ratio / 2
    in_cols = (cols - centre[:, 1] * width).abs() < width * ratio / 2
    return x * (~(in_rows & in_cols)).unsqueeze(1).to(x.dtype)


def _color(x: torch.Tensor, generator: torch.Generator, share: Share) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5), as in DiffAugment, in that order.

    Folded into two passes over the pixels: brightness moves every mean by the same amount, and saturation keeps
    each pixel's channel mean, so the contrast step's image mean is the grey image's mean plus the brightness.
    """

    def factor() -> torch.Tensor:
        return _per_image(lambda b: torch.rand(b, 1, 1, 1, device=x.device, generator=generator, dtype=x.dtype),
                          len(x), share)

    brightness, saturation, contrast = factor() - 0.5, factor() * 2, factor() + 0.5
    grey = x.mean(1, keepdim=True)  # (B, 1, H, W)
    saturated = torch.lerp(grey, x, saturation)
    mean = grey.mean((2, 3), keepdim=True) + brightness
    return torch.addcmul(mean * (1 - contrast) + brightness * contrast, saturated, contrast)


def _flip(x: torch.Tensor, generator: torch.Generator, share: Share) -> torch.Tensor:
    return x.flip(3)


_APPLY = {"translation": _translation, "cutout": _cutout, "color": _color, "flip": _flip}


def diff_augment(images: torch.Tensor, policy: tuple[str, ...], p: torch.Tensor, generator: torch.Generator,
                 share: Share = WHOLE) -> torch.Tensor:
    """Apply each operation of `policy` to each image with probability `p` (a 0-d tensor); differentiable."""
    for name in policy:
        images = torch.where(_chosen(images, p, generator, share), _APPLY[name](images, generator, share), images)
    return images


class AugmentProbability:
    """The probability p, fixed or adaptive, and the overfitting signal r_t = E[sign(D(real))] it follows.

    Adaptive: r_t near 1 means D is confidently right about every training image, i.e. memorising them, so p
    rises; below `target` p falls. p can move from 0 to 1 within `speed_images` real images (ADA uses 500k; small
    runs need a quicker response).

    With several processes, `average` means each batch's signal over all of them (as StyleGAN2-ADA all-reduces
    its statistics), so that p moves by the whole batch and stays the same on every process.
    """

    def __init__(self, p: float, adaptive: bool, target: float, batch_size: int, device: torch.device,
                 interval: int = 4, speed_images: int = 100_000, average=lambda value: value):
        self.p = torch.tensor(float(p), device=device)
        self.adaptive = adaptive
        self.average = average
        self.target = target
        self.interval = interval
        self.step_size = batch_size * interval / speed_images if adaptive else 0.0
        self.signs = torch.zeros((), device=device)
        self.count = 0
        self.rt = torch.zeros((), device=device)

    def observe(self, real_logits: torch.Tensor) -> None:
        """Record one batch of discriminator logits on real images; every `interval` batches, move p."""
        self.signs = self.signs + self.average(torch.sign(real_logits.detach().float()).mean())
        self.count += 1
        if self.count == self.interval:
            self.rt = self.signs / self.count
            self.p = (self.p + torch.sign(self.rt - self.target) * self.step_size).clamp(0.0, 1.0)
            self.signs = torch.zeros_like(self.signs)
            self.count = 0

    def state_dict(self) -> dict:
        return {"p": self.p.cpu(), "signs": self.signs.cpu(), "count": self.count, "rt": self.rt.cpu()}

    def load_state_dict(self, state: dict) -> None:
        """A fixed p (--augment-p given on resume) wins over the saved one; an adaptive p carries on."""
        device = self.p.device
        p, self.signs, self.rt = (state[k].to(device) for k in ("p", "signs", "rt"))
        self.p = p if self.adaptive else self.p
        self.count = int(state["count"])
