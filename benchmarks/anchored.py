"""Images anchored to real ones against per-class sampling, from the same trained GAN: how closely inversion draws
each real image, whether an independent classifier agrees with the labels, what each does for a classifier on
truly held-out images, and how long each takes.

    python benchmarks/anchored.py --journey /tmp/gan-grow/digits/journey-0 --held-out /tmp/gan-grow/digits/data/held-out

It reuses a gan grow journey (benchmarks/grow.py): its GAN (runs/00000-grow), the images it trained on
(split/train) and the truly held-out folder, which trains the independent classifier (as in benchmarks/labels.py)
and is gan value's test set. Both modes make one image per training image: per-class sampling with the label
filter off (what the generator's conditioning gives) and on (what gan sample exports), and anchored variants
(gan sample --near split/train --per-image 1).
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import statistics
import time
from pathlib import Path

import torch

from gan.classify import accuracy, predict
from gan.command_config import SampleConfig, ValueConfig
from gan.config import DataConfig
from gan.data import load_dataset
from gan.sample import export
from gan.value import measure_value
from gan.value_report import BOTH, CLASSICAL, at
from labels import independent_classifier

CPU = torch.device("cpu")


def quiet(_: str) -> None:
    pass


def load(folder: Path):
    return load_dataset(DataConfig(path=str(folder), resolution=32, cache=False), quiet)


def agreement(oracle, folder: Path, class_names: list[str]) -> tuple[float, float]:
    """The independent classifier's agreement with the folders' labels: overall and in the worst class."""
    made = load(folder)
    labels = torch.tensor([class_names.index(made.class_names[int(c)]) for c in made.labels])
    overall, per_class = accuracy(predict(oracle, made.images, CPU), labels, len(class_names))
    return 100 * overall, 100 * min(v for v in per_class if v is not None)


def held_out_gains(train: Path, held_out: Path, synthetic: Path, out: Path) -> list[float]:
    """Per-seed gain of real + classical + synthetic (one per real image) over real + classical, held out."""
    shutil.rmtree(out, ignore_errors=True)
    report = measure_value(ValueConfig(train=str(train), test=str(held_out), synthetic=str(synthetic),
                                       classical=True, synthetic_ratio="1", out=str(out), device="cpu"), quiet).report
    c = report["conditions"]
    return [100 * (a - b) for a, b in zip(c[at(BOTH, None)]["accuracy"], c[CLASSICAL]["accuracy"])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journey", required=True)
    parser.add_argument("--held-out", required=True)
    args = parser.parse_args()
    journey, held_dir = Path(args.journey), Path(args.held_out)
    run, train_dir = journey / "runs" / "00000-grow", journey / "split" / "train"
    held, train_set = load(held_dir), load(train_dir)
    oracle, (real_agreement, _) = independent_classifier(held, train_set, journey)
    print(f"{journey}: {len(train_set)} training images; the independent classifier is right on "
          f"{100 * real_agreement:.1f}% of them")
    modes = {
        "per-class sampling, no label filter": SampleConfig(run=str(run), per_real=1.0, label_filter=False),
        "per-class sampling, label filter (gan sample)": SampleConfig(run=str(run), per_real=1.0),
        "anchored (gan sample --near, jitter 0.5)": SampleConfig(run=str(run), near=str(train_dir), per_image=1),
    }
    print("| mode | images | s per 1,000 images | independent agreement | worst class | reconstruction RMSE (0-255) "
          "| held out: gain over real+classical per seed |")
    print("|---|---|---|---|---|---|---|")
    for n, (name, cfg) in enumerate(modes.items()):
        cfg.out, cfg.overwrite, cfg.device = str(journey / f"bench-{n}"), True, "cpu"
        began = time.perf_counter()
        result = export(cfg, quiet)
        seconds = time.perf_counter() - began
        overall, worst = agreement(oracle, result.out, held.class_names)
        rmse = "-"
        if cfg.near:
            with open(result.manifest, newline="") as listing:
                mse = statistics.mean(float(row["distance"]) for row in csv.DictReader(listing))
            rmse = f"{127.5 * math.sqrt(mse):.1f}"
        gains = held_out_gains(train_dir, held_dir, result.out, journey / f"bench-value-{n}")
        print(f"| {name} | {len(result.files)} | {1000 * seconds / max(1, len(result.files)):.0f} | {overall:.1f}% | "
              f"{worst:.0f}% | {rmse} | {', '.join(f'{g:+.1f}' for g in gains)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
