"""Does the conditional GAN respect the class? The conditioning candidates side by side on the labelled digits
(20 per class, 32 px; see benchmarks/digits_data.py), judged by a classifier that the GAN never saw.

    python benchmarks/conditioning.py [--steps 1000] [--seeds 0] [--out /tmp/gan-conditioning] [--only NAME ...]

For each candidate it trains a GAN on the 200 training digits, generates 100 images per class from its last
checkpoint, and reports:
- label agreement: the share of images made for class c that an independent classifier puts in class c. That
  classifier is trained on the ~1,600 held-out test digits (the GAN's training digits are not among them), so
  its verdict is far more reliable than a judge trained on 200 images could be;
- the lowest class's agreement;
- per-class recall (in the `random` feature space, against the held-out digits of that class): how much of
  each class's variety the generator covers, so that agreement bought with collapse shows;
- overall KID x 1e3 against the held-out digits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from gan.digits import write_split
from gan.classify import TrainingSet, predict, train_classifier
from gan.command_config import EvalConfig
from gan.config import DataConfig, RunConfig
from gan.data import load_dataset
from gan.evaluate import evaluate_run
from gan.generate import generate, load_generator
from gan.checkpoint import load_checkpoint
from gan.pixels import to_uint8
from gan.train import train

# name -> {section.field: value}; the first is the baseline the others are compared with.
CANDIDATES = {
    "concat (the earlier generator)": {"model.g_conditioning": "concat"},
    "conditional BatchNorm": {"model.g_conditioning": "cbn"},
    "cBN + class term 0.2": {"model.g_conditioning": "cbn", "train.class_weight": 0.2},
    "concat + class term 0.2": {"model.g_conditioning": "concat", "train.class_weight": 0.2},
}
PER_CLASS = 100


def quiet(_: str) -> None:
    pass


def oracle(test_dir: Path, out: Path) -> torch.nn.Module:
    """A SmallCNN trained on the held-out digits (cached in OUT)."""
    test = load_dataset(DataConfig(path=str(test_dir), resolution=32, channels=1), quiet)
    path = out / "oracle.pt"
    from gan.classify import SmallCNN
    model = SmallCNN(1, 10)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    model = train_classifier(TrainingSet(test.images, test.labels), 10, 1500, 64, 0, torch.device("cpu"))
    torch.save(model.state_dict(), path)
    return model


def apply(cfg: RunConfig, overrides: dict) -> None:
    for key, value in overrides.items():
        section, name = key.split(".")
        target = getattr(cfg, section)
        if not hasattr(target, name):
            raise SystemExit(f"this version has no setting {key}")
        setattr(target, name, value)


def measure(run: Path, test_dir: Path, judge: torch.nn.Module) -> dict:
    """The figures of the run's newest checkpoint (or of a checkpoint file)."""
    checkpoint = load_checkpoint(str(run))
    G = load_generator(checkpoint, torch.device("cpu"))
    labels = [c for c in range(10) for _ in range(PER_CLASS)]
    images = torch.cat([to_uint8(b) for b in generate(G, list(range(len(labels))), labels, 250, torch.device("cpu"))])
    predicted = predict(judge, images, torch.device("cpu"))
    intended = torch.tensor(labels)
    per_class = [float((predicted[intended == c] == c).double().mean()) for c in range(10)]
    report = evaluate_run(EvalConfig(checkpoint=str(checkpoint.path), real=str(test_dir), count=1000), quiet).report
    recalls = [scores["recall"] for scores in report["classes"].values()]
    return {"agreement": sum(per_class) / 10, "worst": min(per_class), "judged": report["label_agreement"],
            "recall": statistics.mean(recalls),
            "worst_recall": min(recalls), "kid": 1e3 * report["kid"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", default="0", help="GAN seeds, comma-separated")
    parser.add_argument("--out", default="/tmp/gan-conditioning")
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--measure", nargs="*", default=[], help="also measure these checkpoint files (e.g. of runs "
                        "trained by an earlier version)")
    args = parser.parse_args()
    out = Path(args.out)
    if not (out / "data").exists():
        write_split(out / "data", 20)
    train_dir, test_dir = out / "data" / "train", out / "data" / "test"
    judge = oracle(test_dir, out)
    print("| candidate | label agreement | worst class | the run's judge says | per-class recall | worst recall | "
          "KID x1e3 | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for file in args.measure:
        m = measure(Path(file), test_dir, judge)
        print(f"| {file} | {100 * m['agreement']:.1f}% | {100 * m['worst']:.0f}% | {100 * m['judged']:.1f}% | "
              f"{m['recall']:.2f} | {m['worst_recall']:.2f} | {m['kid']:.1f} | - |", flush=True)
    for name, overrides in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        rows = []
        started = time.perf_counter()
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = RunConfig()
            cfg.data.path, cfg.data.resolution = str(train_dir), 32
            cfg.train.steps, cfg.train.seed, cfg.train.eval_every = args.steps, seed, 0
            cfg.train.out, cfg.train.name = str(out / "runs"), f"{name}-{seed}"
            cfg.train.tensorboard = False
            apply(cfg, overrides)
            rows.append(measure(train(cfg, log=quiet).run_dir, test_dir, judge))
        mean = {key: statistics.mean(r[key] for r in rows) for key in rows[0]}
        minutes = (time.perf_counter() - started) / 60 / len(rows)
        print(f"| {name} | {100 * mean['agreement']:.1f}% | {100 * mean['worst']:.0f}% | {100 * mean['judged']:.1f}% | "
              f"{mean['recall']:.2f} | "
              f"{mean['worst_recall']:.2f} | {mean['kid']:.1f} | {minutes:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
