"""Batches for the training loop: endless shuffled epochs (or class-balanced draws) of the decoded images, on the
device, with all their randomness from one CPU generator whose state goes into checkpoints."""

from __future__ import annotations

import torch

from gan.data import ImageDataset
from gan.device import upload
from gan.errors import GanError
from gan.pixels import to_signed


class Shuffled:
    """Indices 0..n-1 in endless reshuffled passes; a request larger than n spans several passes."""

    def __init__(self, n: int, generator: torch.Generator):
        self.generator = generator
        self.order = torch.randperm(n, generator=generator)
        self.position = 0

    def take(self, count: int) -> torch.Tensor:
        taken = []
        while count:
            if self.position == len(self.order):
                self.order = torch.randperm(len(self.order), generator=self.generator)
                self.position = 0
            chunk = self.order[self.position : self.position + count]
            self.position += len(chunk)
            count -= len(chunk)
            taken.append(chunk)
        return torch.cat(taken)


class RealBatches:
    """Endless shuffled epochs (or class-balanced draws) of real batches as floats in [-1, 1] on the device.

    All randomness (order, mirroring) comes from one CPU generator, so batches do not depend on the device, and
    its state goes into checkpoints so a resumed run sees exactly the batches the uninterrupted one would have.
    With several processes, every one draws the whole `batch_size` and keeps its `rows` of it: disjoint parts of
    one batch, and the same state everywhere.
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, mirror: bool, class_balance: bool,
                 generator: torch.Generator, device: torch.device, rows: slice = slice(None)):
        self.images = dataset.images.to(device)
        self.labels = dataset.labels.to(device)
        self.batch_size = batch_size
        self.rows = rows
        self.mirror = mirror
        self.generator = generator
        # Class balance: each image weighted by 1 / its class size, drawn with replacement.
        counts = torch.bincount(dataset.labels).clamp(min=1).float()
        self.weights = (1.0 / counts)[dataset.labels] if class_balance else None
        self.shuffled = Shuffled(len(dataset), generator)

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.weights is None:
            indices = self.shuffled.take(self.batch_size)  # a dataset smaller than a batch gives several passes
        else:
            indices = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)
        flip = (torch.rand(len(indices), generator=self.generator) < 0.5)[self.rows] if self.mirror else None
        indices = upload(indices[self.rows], self.images.device)
        images = self.images.index_select(0, indices)  # far faster than images[indices] on the CPU
        if flip is not None:  # on uint8, a quarter of the bytes
            flip = upload(flip, images.device).view(-1, 1, 1, 1)
            images = torch.where(flip, images.flip(3), images)
        return to_signed(images), self.labels.index_select(0, indices)

    def state_dict(self) -> dict:
        order = self.shuffled.order
        return {"generator": self.generator.get_state(), "order": order.clone(), "position": self.shuffled.position}

    def load_state_dict(self, state: dict) -> None:
        if len(state["order"]) != len(self.shuffled.order):
            raise GanError(
                f"the data folder now has {len(self.shuffled.order)} usable images but the checkpoint was trained on "
                f"{len(state['order'])}; resume needs the same images (or start a new run)"
            )
        self.generator.set_state(state["generator"])
        self.shuffled.order = state["order"].clone()
        self.shuffled.position = int(state["position"])
