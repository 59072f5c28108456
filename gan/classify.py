"""The fixed yardstick of `gan value`: a compact CNN classifier, trained the same way on every training set, so
that differences in test accuracy come from the data alone.

SmallCNN: three stages of 3x3 convolutions with BatchNorm and ReLU (32, 64, 128 channels; two convolutions in the
first two stages), each followed by 2x2 max pooling, then global average pooling, dropout 0.3 and one linear
layer: about 0.3M parameters, for 32 to 128 px. AdamW (lr 2e-3, weight decay 5e-4) with a cosine schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan.batches import Shuffled
from gan.pixels import to_signed
from gan.tracking import progress_bar

LEARNING_RATE = 2e-3
WEIGHT_DECAY = 5e-4


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            *_conv(channels, 32), *_conv(32, 32), nn.MaxPool2d(2),  # (B, 32, R/2, R/2)
            *_conv(32, 64), *_conv(64, 64), nn.MaxPool2d(2),  # (B, 64, R/4, R/4)
            *_conv(64, 128), nn.MaxPool2d(2),  # (B, 128, R/8, R/8)
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean((2, 3)))


@dataclass
class TrainingSet:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images -> the classifier's input: floats in [-1, 1] on `device`."""
    return to_signed(images.to(device))


def train_classifier(data: TrainingSet, num_classes: int, steps: int, batch_size: int, seed: int,
                     device: torch.device, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     progress: str = "") -> nn.Module:
    """A SmallCNN trained for `steps` steps on shuffled passes over `data`; `augment` (uint8 batch -> uint8 batch)
    makes a fresh variant of every image of every batch. Repeatable from `seed`. `progress`: the name of a
    progress bar to show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the initial weights and dropout from `seed`, the caller's RNG untouched
        torch.manual_seed(seed)
        model = SmallCNN(data.images.shape[1], num_classes).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
        shuffled = Shuffled(len(data.labels), generator)
        model.train()
        for _ in progress_bar(steps, progress, "step", iterable=range(steps)) if progress else range(steps):
            pick = shuffled.take(batch_size)  # always a full batch, across passes: equal work in every configuration
            images = data.images[pick]
            if augment is not None:
                images = augment(images)
            loss = F.cross_entropy(model(to_input(images, device)), data.labels[pick].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def probabilities(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """(N, num_classes) class probabilities of uint8 images, on the CPU."""
    return torch.cat([model(to_input(images[i : i + batch_size], device)).float().softmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


def predict(model: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Predicted class of every uint8 image, on the CPU."""
    return probabilities(model, images, device).argmax(1)


@torch.no_grad()
def embed(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """(N, features) of uint8 images: the classifier's pooled last features, the space it tells classes in."""
    return torch.cat([model.features(to_input(images[i : i + batch_size], device)).mean((2, 3)).float().cpu()
                      for i in range(0, len(images), batch_size)])


def accuracy(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[float, list[float | None]]:
    """Overall accuracy and the accuracy on each class (None for a class with no image)."""
    correct = (predicted == labels).double()
    per_class = [float(correct[labels == c].mean()) if (labels == c).any() else None for c in range(num_classes)]
    return float(correct.mean()), per_class
