"""Feature spaces for the metrics: each maps images in [-1, 1] to one vector per image, behind one interface.

- `inception`: the standard FID Inception-v3 pool features (2048), the only space whose FID compares with
  published numbers. Its weights come from --inception-weights or the torch hub cache; asked for by name and
  missing, they are downloaded there once and checked against their published SHA-256 (`auto` never downloads).
  They are loaded with weights_only=True.
- `random`: a fixed, seeded, randomly initialised CNN. It needs no download, and random-network features are
  known to rank generative models sensibly (Naeem et al. 2020), but its numbers only compare with other runs
  evaluated in the same space.
- a TorchScript file: any domain-specific embedding (medical, satellite ...).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan.config import MetricsConfig
from gan.errors import GanError, first_line
from gan.pixels import to_signed, to_uint8
from gan.tracking import progress_bar

# The file names torchmetrics / torch-fidelity and pytorch-fid give the same TF-ported FID weights in the hub cache.
INCEPTION_FILES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILES[0]
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"  # its name holds the first 8
fetch_url = torch.hub.download_url_to_file  # (url, dst, hash_prefix, progress): replaced in tests, never online
_RANDOM_SEED = 0  # part of the random space's definition: changing it changes every number measured in it


class FeatureSpace(nn.Module):
    """Images (N, C, H, W) in [-1, 1] -> features (N, num_features) float32."""

    name: str
    num_features: int
    comparable: bool  # whether FID here is comparable to published FIDs


class InceptionFeatures(FeatureSpace):
    name, num_features, comparable = "inception", 2048, True

    def __init__(self, state_dict: dict):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        # torch-fidelity reads its weights with an unrestricted torch.load; it gets a buffer written here from
        # tensors already loaded safely, so nothing from the user's file is unpickled without weights_only.
        buffer = io.BytesIO()
        torch.save(state_dict, buffer)
        buffer.seek(0)
        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=buffer)
        # The same numbers, faster on a CPU (docs/performance.md).
        self.net.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = to_uint8(images)  # what a saved PNG would hold
        return self.net(_rgb(pixels)).float()


class RandomFeatures(FeatureSpace):
    """Four strided convolutions with fixed random weights on a 64 x 64 view; the mean of each layer's
    activations, concatenated (32 + 64 + 128 + 256 = 480 features), so both fine and coarse structure count."""

    name, num_features, comparable = "random", 480, False
    _WIDTHS = (3, 32, 64, 128, 256)

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(_RANDOM_SEED)
        self.weights = nn.ParameterList()
        for c_in, c_out in zip(self._WIDTHS, self._WIDTHS[1:]):
            std = (2 / (c_in * 9)) ** 0.5  # He initialisation keeps activations at a similar scale through depth
            self.weights.append(nn.Parameter(torch.randn(c_out, c_in, 3, 3, generator=generator) * std, False))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(_rgb(images.float()), size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
        pooled = []
        for weight in self.weights:
            x = F.leaky_relu(F.conv2d(x, weight, stride=2, padding=1), 0.2)
            pooled.append(x.mean((2, 3)))
        return torch.cat(pooled, 1)


class ScriptedFeatures(FeatureSpace):
    """A user's TorchScript module; it receives RGB float images in [0, 1] at the run's resolution."""

    comparable = False
    num_features = 0  # known after the first batch

    def __init__(self, path: Path, device: torch.device):
        super().__init__()
        self.name = str(path)
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; the user's file is one all the same
                warnings.simplefilter("ignore", FutureWarning)
                self.net = torch.jit.load(str(path), map_location=device).eval()
        except Exception as error:  # not a TorchScript archive, truncated ...
            raise GanError(f"--features {path} is not a TorchScript file ({error}); save the feature extractor "
                           f"with torch.jit.save(torch.jit.script(model), path)") from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        shape = tuple(images.shape[:1]) + (3,) + tuple(images.shape[2:])
        try:
            features = self.net(_rgb(images.float()).add(1).div(2))
        except Exception as error:  # the user's code: any error, stated in one line
            message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise GanError(f"--features {self.name} fails on images of shape {shape}: {message}") from None
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != shape[0]:
            got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise GanError(f"--features {self.name} must return one vector per image, shape (N, D); it returned "
                           f"{got} for {shape[0]} images")
        self.num_features = features.shape[1]
        return features.float()


def _rgb(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def inception_candidates(cfg: MetricsConfig) -> list[Path]:
    """Where Inception weights are looked for: --inception-weights if given, else the torch hub cache."""
    if cfg.inception_weights:
        return [Path(cfg.inception_weights).expanduser()]
    return [Path(torch.hub.get_dir()) / "checkpoints" / name for name in INCEPTION_FILES]


def _load_inception(path: Path) -> InceptionFeatures:
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        return InceptionFeatures(state_dict)
    except Exception as error:  # unreadable, unsafe pickle, or another network's weights
        raise GanError(f"cannot use {path} as Inception-v3 FID weights ({str(error).splitlines()[0]}). Download "
                       f"{INCEPTION_URL} and pass it with --inception-weights") from None


def _download_inception(path: Path, log: Callable[[str], None]) -> Path:
    """The FID weights, downloaded once into the torch hub cache with a progress bar; torch writes them to a temp
    file and keeps it only when its SHA-256 is the published one."""
    log(f"downloading the FID Inception-v3 weights (92 MB, once) from {INCEPTION_URL} to {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fetch_url(INCEPTION_URL, str(path), hash_prefix=INCEPTION_SHA256, progress=True)
    except Exception as error:  # offline, refused, interrupted, or not the published file
        path.unlink(missing_ok=True)
        raise GanError(f"cannot download the Inception weights ({first_line(error)}). Download {INCEPTION_URL} to "
                       f"{path} (or anywhere, and pass --inception-weights FILE), or use --features random") from None
    return path


def load_feature_space(cfg: MetricsConfig, device: torch.device, log: Callable[[str], None] = print) -> FeatureSpace:
    """The feature space cfg.features names, on `device`; `auto` falls back to `random`, saying so."""
    if cfg.features in ("auto", "inception"):
        candidates = inception_candidates(cfg)
        found = next((path for path in candidates if path.is_file()), None)
        if not found and cfg.features == "inception" and not cfg.inception_weights:
            found = _download_inception(candidates[0], log)
        if found:
            return _load_inception(found).to(device)
        where = " or ".join(map(str, candidates))
        if cfg.inception_weights:
            raise GanError(f"no Inception weights at {where}. Download {INCEPTION_URL} there (or anywhere, and "
                           f"pass --inception-weights FILE), or use --features random")
        log(f"note: no Inception weights at {where}, so the metrics use the 'random' feature space (a fixed random "
            f"CNN). Its numbers compare between runs evaluated the same way, not with published FIDs. For "
            f"standard FID, download {INCEPTION_URL} to that folder.")
        return RandomFeatures().to(device)
    if cfg.features == "random":
        return RandomFeatures().to(device)
    path = Path(cfg.features).expanduser()
    if not path.is_file():
        raise GanError(f"--features {path}: no such file. Give auto, inception, random, or a TorchScript file")
    return ScriptedFeatures(path, device)


@torch.no_grad()
def embed(space: FeatureSpace, images: torch.Tensor, device: torch.device, batch_size: int = 64,
          progress: str = "") -> torch.Tensor:
    """Features (N, D) on the CPU of uint8 images (N, C, H, W), extracted in batches on `device` (under a progress
    bar named `progress`, when given)."""
    parts = []
    starts = range(0, len(images), batch_size)
    for start in progress_bar(len(starts), progress, "batch", iterable=starts) if progress else starts:
        batch = to_signed(images[start : start + batch_size].to(device))
        parts.append(space(batch).cpu())
    features = torch.cat(parts) if parts else torch.zeros(0, space.num_features)
    if not torch.isfinite(features).all():
        raise GanError(f"the '{space.name}' feature space gave NaN or infinite features; the metrics need finite ones")
    return features
