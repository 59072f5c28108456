"""Small-data benchmark on a 102-image class-folder subset of the bundled emoji, at 32 px. Two sets of
configurations: `defaults` puts the first slice's plain DCGAN against the small-data defaults (conditional,
DiffAugment with adaptive p, spectral norm) and the defaults with BatchNorm instead of spectral norm in D;
`losses` puts the defaults against the relativistic loss, the R1 + R2 penalties, LeCam, and their combinations.

    python benchmarks/small_data.py [--set defaults|losses] [--steps 1000] [--seeds 0,1] [--out /tmp/small-data]

Prints, for each configuration, measured on images no training run saw:
- KID, recall and precision against the held-out images (gan eval --real, in the metrics' feature space), and
  label agreement: the share of samples the run's judge puts in the class they were made for.
- D overfitting: D's accuracy (logit > 0 means "real") on its 100 training images and on held-out real images;
  a discriminator that memorised its training set calls them real and the held-out ones fake (large gap).
- diversity: mean pairwise distance between generated samples, relative to the same measure on the real images
  (1.0 = as varied as the data; much lower = collapse); for conditional models also within each class, against
  that class's real images (a conditional G can look varied overall while making one image per class).
- copies: median distance from each sample to its nearest training image, relative to the same distance for the
  held-out reals (well below 1.0 = samples sit on training images).
Distances are RMS pixel differences in [0, 1] at 32 px. Writes docs/small_data.png (or docs/losses.png for the
losses set): the sample grids side by side, in that order.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gan.checkpoint import load_checkpoint
from gan.command_config import EvalConfig
from gan.config import RunConfig
from gan.data import load_dataset
from gan.evaluate import evaluate_run
from gan.models import Discriminator
from gan.generate import generate, load_generator
from gan.pixels import to_signed
from gan.tracking import image_grid, save_png
from gan.train import train

ROOT = Path(__file__).resolve().parent.parent
GAMMA = {"r1_gamma": 0.1, "r2_gamma": 0.1, "gamma_final": 0.1}  # R3GAN's pair of penalties, decaying to a tenth
CONFIGS = {
    "defaults": {
        "plain (first slice)": {"conditional": "off", "spectral_norm": "off", "augment": "none"},
        "small-data defaults": {},  # every setting left on auto
        "defaults, BatchNorm D": {"spectral_norm": "off"},  # is spectral normalisation worth its place?
    },
    "losses": {
        "defaults": {},
        "rpgan": {"loss": "rpgan"},
        "rpgan+R1+R2": {"loss": "rpgan", **GAMMA},  # the R3GAN recipe
        "lecam": {"lecam_weight": 0.3},
        "rpgan+R1+R2+lecam": {"loss": "rpgan", **GAMMA, "lecam_weight": 0.3},
    },
}
GRIDS = {"defaults": "small_data.png", "losses": "losses.png"}


def split_emoji(out: Path, train_per_class: int, held_out_per_class: int) -> tuple[Path, Path]:
    """Copy disjoint train and held-out subsets of data/emoji, keeping the class folders."""
    train_dir, held_dir = out / "train", out / "held-out"
    for folder in sorted((ROOT / "data" / "emoji").iterdir()):
        if not folder.is_dir():
            continue
        files = sorted(folder.glob("*.png"))
        for target, chosen in ((train_dir, files[:train_per_class]),
                               (held_dir, files[train_per_class : train_per_class + held_out_per_class])):
            (target / folder.name).mkdir(parents=True, exist_ok=True)
            for f in chosen:
                shutil.copy(f, target / folder.name / f.name)
    return train_dir, held_dir


def as_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) or [-1, 1] floats -> flat float vectors in [0, 1]."""
    x = images.float() / 255 if images.dtype == torch.uint8 else (images.float() + 1) / 2
    return x.flatten(1)


def rms_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b) / a.shape[1] ** 0.5


def mean_pairwise(x: torch.Tensor) -> float:
    d = rms_distances(x, x)
    return float(d.sum() / (len(x) * (len(x) - 1)))


def nearest(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return rms_distances(x, reference).min(1).values


@torch.no_grad()
def d_accuracy(D: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None) -> float:
    logits = D(to_signed(images), labels)
    return float((logits > 0).float().mean())


def evaluate(run_dir: Path, train_set, held_set, held_dir: Path, samples: int) -> dict:
    report = evaluate_run(EvalConfig(run=str(run_dir), checkpoint="last", real=str(held_dir)), log=lambda _: None).report
    checkpoint = load_checkpoint(str(run_dir))
    cfg = checkpoint.saved_config()
    D = Discriminator(cfg.model, cfg.data.resolution, cfg.data.channels, cfg.num_classes)
    D.load_state_dict(checkpoint.state["D"])
    D.eval()
    conditional = cfg.num_classes > 0
    accuracy_train = d_accuracy(D, train_set.images, train_set.labels if conditional else None)
    accuracy_held = d_accuracy(D, held_set.images, held_set.labels if conditional else None)

    G = load_generator(checkpoint, torch.device("cpu"))
    labels = [i % len(cfg.data.class_names) for i in range(samples)] if conditional else None
    fakes = torch.cat(list(generate(G, list(range(samples)), labels, 100, torch.device("cpu"))))
    reals, held = as_unit(train_set.images), as_unit(held_set.images)
    generated = as_unit(fakes)
    every_real = torch.cat([reals, held])
    real_labels = torch.cat([train_set.labels, held_set.labels])
    per_class = float("nan")
    if conditional:
        sample_labels = torch.tensor(labels)
        per_class = statistics.mean(
            mean_pairwise(generated[sample_labels == c]) / mean_pairwise(every_real[real_labels == c])
            for c in range(len(cfg.data.class_names))
        )
    return {
        "KID": report["kid"],
        "recall": report["recall"],
        "precision": report["precision"],
        "agreement": report.get("label_agreement", float("nan")),
        "D acc train": accuracy_train,
        "D acc held-out": accuracy_held,
        "overfit gap": accuracy_train - accuracy_held,
        "diversity": mean_pairwise(generated) / mean_pairwise(every_real),
        "in-class div.": per_class,
        "copies": float(nearest(generated, reals).median() / nearest(held, reals).median()),
        "grid": fakes[:64],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", default="/tmp/gan-small-data")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; figures are their mean (and spread)")
    parser.add_argument("--set", choices=tuple(CONFIGS), default="defaults", help="which configurations to compare")
    args = parser.parse_args()
    configs = CONFIGS[args.set]
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    train_dir, held_dir = split_emoji(out / "data", train_per_class=34, held_out_per_class=40)

    quiet = lambda _: None  # noqa: E731
    probe = RunConfig().data
    probe.resolution, probe.cache = 32, False
    probe.path = str(train_dir)
    train_set = load_dataset(probe, quiet)
    probe.path = str(held_dir)
    held_set = load_dataset(probe, quiet)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    results: dict[str, list[dict]] = {name: [] for name in configs}
    for seed in seeds:
        for name, overrides in configs.items():
            cfg = RunConfig()
            cfg.data.path, cfg.data.resolution, cfg.data.cache = str(train_dir), 32, False
            cfg.train.steps, cfg.train.seed, cfg.train.out = args.steps, seed, str(out / "runs")
            cfg.train.image_every, cfg.train.checkpoint_every, cfg.train.tensorboard = args.steps, args.steps, False
            cfg.train.eval_every = args.steps  # the last step: it trains the run's judge, which agreement needs
            cfg.train.name = name.split()[0].strip(",")
            for key, value in overrides.items():
                setattr(cfg.model if hasattr(cfg.model, key) else cfg.train, key, value)
            started = time.perf_counter()
            print(f"training {name}, seed {seed}, for {args.steps} steps ...", file=sys.stderr, flush=True)
            result = train(cfg, log=quiet)
            minutes = (time.perf_counter() - started) / 60
            scores = evaluate(result.run_dir, train_set, held_set, held_dir, args.samples)
            results[name].append({**scores, "minutes": minutes})

    print(f"\n{len(train_set)} training images (3 classes), {len(held_set)} held-out, 32 px, {args.steps} G steps, "
          f"seeds {args.seeds} (mean, and +- half the range across seeds), torch {torch.__version__}, "
          f"CPU threads {torch.get_num_threads()}\n")
    columns = ["KID", "recall", "precision", "agreement", "D acc train", "D acc held-out", "overfit gap", "diversity",
               "in-class div.", "copies", "minutes"]
    print(f"{'configuration':<24}" + "".join(f"{c:>16}" for c in columns))
    for name, runs in results.items():
        cells = []
        for c in columns:
            values = [r[c] for r in runs]
            if all(v != v for v in values):  # NaN: the measure does not apply (no classes)
                cells.append("-")
                continue
            spread = (max(values) - min(values)) / 2
            digits = 4 if c == "KID" else 3
            cells.append(f"{statistics.mean(values):.{digits}f}" + (f" +-{spread:.{digits}f}" if len(values) > 1 else ""))
        print(f"{name:<24}" + "".join(f"{cell:>16}" for cell in cells))
    grids = [image_grid(runs[0]["grid"]) for runs in results.values()]
    gap = np.full((grids[0].shape[0], 12, 3), 255, dtype=np.uint8)
    target = ROOT / "docs" / GRIDS[args.set]
    save_png(np.concatenate([part for grid in grids for part in (grid, gap)][:-1], axis=1), target)
    print(f"\ngrids side by side ({' | '.join(results)}): {target}")


if __name__ == "__main__":
    main()
