"""The numbers behind "is it any good, and is it just copying?", computed from feature vectors (no IO, no models).

FID and KID come from torchmetrics, fed features that are extracted once (gan.features) and reused for
precision/recall and the nearest-neighbour checks. Precision/recall follow Kynkäänniemi et al. 2019: a sample is
"precise" when it falls inside the k-nearest-neighbour ball of some real image, and a real image is "recalled"
when it falls inside the ball of some sample.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from gan.errors import GanError

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # the usual size; smaller sets use all they have
PR_NEIGHBOURS = 3  # k of the k-NN manifolds, as in the paper
COPY_FRACTION = 0.5  # a copy is closer to a training image than this x that image's distance to its nearest neighbour
MIN_TRAINING_IMAGES = 3  # the copy check compares each image's neighbours without it: two others at least
_CHUNK = 1024  # rows of a distance matrix computed at once, to bound memory


class _Precomputed(nn.Module):
    """Hands torchmetrics features that are already extracted."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def kid_subset_size(smallest: int) -> int:
    """The usual 1000, or half the smaller set: subsets as large as the set would all be the same images,
    and KID's spread over subsets would say nothing."""
    return min(KID_SUBSET_SIZE, max(2, smallest // 2))


def _check_sizes(real: torch.Tensor, fake: torch.Tensor) -> None:
    if min(len(real), len(fake)) < 2:
        raise GanError(f"FID and KID need at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")


# The features given are already every process's (training gathers them): torchmetrics must not gather again, which
# it would try whenever a process group is up, waiting for processes that are not scoring.
_LOCAL = {"sync_on_compute": False}


def kid(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """KID's mean and std over random subsets (seeded, so repeated evaluations agree)."""
    _check_sizes(real, fake)
    # Imported here: torchmetrics' image metrics pull in torchvision and torch-fidelity (1.6 s), which training
    # need not wait for before its first step.
    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():  # it warns that KID keeps every feature: here they are already in memory
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=KID_SUBSETS,
                                         subset_size=kid_subset_size(min(len(real), len(fake))), **_LOCAL)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global generator
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def fid_kid(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """FID, and KID's mean and std over random subsets."""
    _check_sizes(real, fake)
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), **_LOCAL)
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    kid_mean, kid_std = kid(real, fake, seed)
    return {"fid": float(fid.compute()), "kid": kid_mean, "kid_std": kid_std}


def class_kids(real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor, fake_labels: torch.Tensor,
               class_names: list[str]) -> dict[str, float]:
    """KID of each class's samples against that class's real images (classes with 2+ images on both sides): a
    sample in the wrong class costs here, where the overall KID cannot see it."""
    kids = {}
    for c, name in enumerate(class_names):
        real_c, fake_c = real[real_labels == c], fake[fake_labels == c]
        if min(len(real_c), len(fake_c)) >= 2:
            kids[name] = kid(real_c, fake_c)[0]
    return kids


def _rows(a: torch.Tensor, b: torch.Tensor):
    """Distance blocks (start, cdist(a[start:start+chunk], b)), so no full matrix is ever held."""
    for start in range(0, len(a), _CHUNK):
        yield start, torch.cdist(a[start : start + _CHUNK].double(), b.double())


def neighbours(a: torch.Tensor, b: torch.Tensor, k: int = 1, exclude_self: bool = False,
               distinct: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of `a`, the distances (N, k) to and indices (N, k) of its k nearest rows of `b`, nearest
    first. exclude_self: b is a, and a row is not its own neighbour. distinct: rows equal to it (itself and exact
    duplicates) are not neighbours either; distance inf when there is no other."""
    tolerance = _equal_within(a, b) if distinct else 0.0
    distances, indices = [], []
    for start, block in _rows(a, b):
        if exclude_self:
            block[torch.arange(len(block)), torch.arange(start, start + len(block))] = float("inf")
        if distinct:
            block[block <= tolerance] = float("inf")
        d, i = block.topk(k, 1, largest=False)
        distances.append(d)
        indices.append(i)
    return torch.cat(distances), torch.cat(indices)


def _equal_within(a: torch.Tensor, b: torch.Tensor) -> float:
    """Distances below this are equal rows: distances from matrix products carry rounding of about 1e-8 of the
    vectors' length (in float64), so 1e-6 of it is far above the rounding and far below any real difference."""
    return 1e-6 * float(torch.cat([a, b]).double().norm(dim=1).max())


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Fraction of points inside at least one ball (centre, radius)."""
    inside = [(block <= radii[None]).any(1) for _, block in _rows(points, centres)]
    return float(torch.cat(inside).double().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = PR_NEIGHBOURS) -> dict[str, float]:
    """Improved precision (samples on the real manifold) and recall (real images on the samples' manifold)."""
    k = min(k, len(real) - 1, len(fake) - 1)  # tiny sets: the nearest neighbours they have
    if k < 1:
        raise GanError(f"precision/recall need at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    return {
        "precision": _coverage(fake, real, neighbours(real, real, k, exclude_self=True)[0][:, -1]),
        "recall": _coverage(real, fake, neighbours(fake, fake, k, exclude_self=True)[0][:, -1]),
    }


def distribution_metrics(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """FID, KID (mean, std), precision and recall of generated features against real ones."""
    return {**fid_kid(real, fake, seed), **precision_recall(real, fake)}


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
