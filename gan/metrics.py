"""The numbers behind "is it any good?", computed from feature vectors (no IO, no models).

FID and KID come from torchmetrics, fed features that are extracted once (gan.features) and reused for
precision/recall (and by gan.copies for the nearest-neighbour checks). Precision/recall follow Kynkäänniemi et al. 2019: a sample is
"precise" when it falls inside the k-nearest-neighbour ball of some real image, and a real image is "recalled"
when it falls inside the ball of some sample.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from gan.errors import GanError

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # the usual size; smaller sets use all they have
PR_NEIGHBOURS = 3  # k of the k-NN manifolds, as in the paper
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
