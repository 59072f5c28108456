"""Is it copying? Samples that sit closer to a training image than the training images sit to each other (in
features and in pixels), and test images that are copies of training ones, re-encoded or resized."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from gan.data import ImageDataset
from gan.errors import GanError
from gan.features import FeatureSpace, embed
from gan.metrics import neighbours
from gan.pixels import to_signed, to_uint8

COPY_FRACTION = 0.5  # a copy is closer to a training image than this x that image's distance to its nearest neighbour
MIN_TRAINING_IMAGES = 3  # the copy check compares each image's neighbours without it: two others at least


@dataclass
class NearestTraining:
    """Each sample's nearest training image, in feature space and in pixel space, and how close that is compared
    with the training image's own nearest neighbour (ratio < COPY_FRACTION: a copy)."""

    feature_distance: torch.Tensor  # (N,)
    feature_index: torch.Tensor  # (N,) index into the training set
    feature_ratio: torch.Tensor  # (N,) feature_distance / that training image's nearest-neighbour distance
    pixel_distance: torch.Tensor
    pixel_index: torch.Tensor
    pixel_ratio: torch.Tensor

    @property
    def copies(self) -> torch.Tensor:
        """(N,) bool: a near-copy in feature space, where a shifted or recoloured copy is still near."""
        return self.feature_ratio <= COPY_FRACTION


def _leave_one_out_ratios(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The copy ratio each training image t would get as a sample against the other training images: its
    distance to its nearest other image u over u's distance to its nearest distinct image other than t."""
    distance, u = (column[:, 0] for column in neighbours(x, x, exclude_self=True))
    second, second_index = neighbours(x, x, k=2, distinct=True)
    without_t = torch.where(second_index[u, 0] == torch.arange(len(x)), second[u, 1], scale[u])
    return distance / without_t


class CopyDetector:
    """Flags samples that sit closer to a training image than that image sits to any other training image.

    The scale is local: a sample is a copy of training image t when its distance to t is at most COPY_FRACTION x
    the distance from t to its nearest distinct training neighbour (exact duplicates of t do not count, or a
    duplicated image, the likeliest to be memorised, would get a threshold of 0). Dense regions of the data
    (plain backgrounds, near-duplicates) get a tight threshold, sparse ones a loose one. `real_copy_rate` is how
    many training images are themselves that close to another one: the rate to compare a generator's with.
    """

    def __init__(self, train_features: torch.Tensor, train_pixels: torch.Tensor):
        if len(train_features) < MIN_TRAINING_IMAGES:
            raise GanError(f"the memorization check needs at least {MIN_TRAINING_IMAGES} training images")
        self.train_features, self.train_pixels = train_features, train_pixels.flatten(1)
        self.feature_scale = neighbours(train_features, train_features, distinct=True)[0][:, 0]
        self.pixel_scale = neighbours(self.train_pixels, self.train_pixels, distinct=True)[0][:, 0]
        self.real_ratio = _leave_one_out_ratios(train_features, self.feature_scale)
        self.real_copy_rate = float((self.real_ratio <= COPY_FRACTION).double().mean())

    def nearest(self, features: torch.Tensor, pixels: torch.Tensor) -> NearestTraining:
        feature_distance, feature_index = (t[:, 0] for t in neighbours(features, self.train_features))
        pixel_distance, pixel_index = (t[:, 0] for t in neighbours(pixels.flatten(1), self.train_pixels))
        return NearestTraining(
            feature_distance, feature_index, feature_distance / self.feature_scale[feature_index],
            pixel_distance, pixel_index, pixel_distance / self.pixel_scale[pixel_index],
        )


def copy_detector(space: FeatureSpace, train: ImageDataset, device: torch.device, batch_size: int = 64) -> CopyDetector:
    """Copy detection against the training images, in `space` and in pixel space."""
    return CopyDetector(embed(space, train.images, device, batch_size), to_signed(train.images))


def copy_filter(space: FeatureSpace, train: ImageDataset, device: torch.device,
                batch_size: int = 64) -> Callable[[torch.Tensor], torch.Tensor]:
    """is_copy(images in [-1, 1]) -> bool per image: a near-copy of a training image (as saved, in uint8)."""
    detector = copy_detector(space, train, device, batch_size)

    def is_copy(images: torch.Tensor) -> torch.Tensor:
        pixels = to_uint8(images)
        return detector.nearest(embed(space, pixels, device, batch_size), to_signed(pixels)).copies

    return is_copy


def memorization_summary(nearest: NearestTraining, detector: CopyDetector) -> dict:
    copies = int(nearest.copies.sum())
    return {
        "copy_rate": copies / len(nearest.copies),
        "copies": copies,
        "copy_fraction": COPY_FRACTION,
        "real_copy_rate": detector.real_copy_rate,
        "median_real_ratio": float(detector.real_ratio.median()),
        "pixel_copy_rate": float((nearest.pixel_ratio <= COPY_FRACTION).double().mean()),
        "median_feature_ratio": float(nearest.feature_ratio.median()),
        "median_pixel_ratio": float(nearest.pixel_ratio.median()),
    }


# Images are compared as 8x8 cells of colour: a JPEG re-encode (even at quality 50) moved no cell by more than 12
# levels on the emoji and digits, while each image's nearest other image there differed by 27 or more in some cell.
_CELLS, _NEAR_COPY_LEVELS = 8, 16


def _cells(images: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.adaptive_avg_pool2d(images.float(), _CELLS).flatten(1)


def near_copies(images: torch.Tensor, others: torch.Tensor) -> list[int | None]:
    """For each image, the index of one of `others` that it copies (byte for byte, re-saved, re-encoded or resized
    to the same pixels, near enough), or None."""
    a, b = _cells(images), _cells(others)
    # A cell off by less than L everywhere means a distance below L * sqrt(cells): a fast first pass (one matrix
    # product), then the exact test on the few candidates it leaves.
    bound = _NEAR_COPY_LEVELS * math.sqrt(b.shape[1])
    found = []
    for chunk in a.split(512):
        for row, close in zip(chunk, torch.cdist(chunk, b) < bound):
            candidates = close.nonzero().flatten()
            hits = candidates[(b[candidates] - row).abs().amax(1) < _NEAR_COPY_LEVELS]
            found.append(int(hits[0]) if len(hits) else None)
    return found
