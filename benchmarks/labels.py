"""Labels that hold on real small data? Conditioning candidates on labelled sets with headroom, each GAN judged by
an independent classifier trained on held-out real images of the same classes (never by the run's own judge).

    python benchmarks/labels.py --set digits [--candidates default,per-class] [--seeds 0,1] [--steps 2000]
                                [--value] [--out /tmp/gan-labels]

Sets (nothing downloaded, nothing committed):
- digits: scikit-learn's 1,797 handwritten 8x8 digits at 32 px, 10 per class (100) to train on; the other 1,697
  train the independent classifier and are gan value's test set.
- colour-digits: the same digits and split, each as ink of a random colour on paper of another, turned by up to 15
  degrees: style varies far more than class, as in photos.
- emoji: the bundled emoji, 50 per class (150) to train on; the other 309 are the independent classifier's and
  gan value's.

For each candidate and GAN seed it trains a GAN at 32 px from the defaults plus the candidate's settings, makes 100
images per class from best.pt (what gan sample uses), and prints the independent classifier's agreement per class,
the per-class recall in that classifier's features, and the minutes. With --value it also exports as a user would
(gan sample --per-real, label filter on) and runs gan value --classical over the synthetic shares.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from conditioning import apply
from gan.digits import write_split
from gan.checkpoint import load_checkpoint, pick_checkpoint
from gan.classify import SmallCNN, TrainingSet, accuracy, embed, predict, train_classifier
from gan.command_config import SampleConfig, ValueConfig
from gan.config import DataConfig, RunConfig
from gan.data import load_dataset
from gan.generate import generate, load_generator
from gan.judge import _shifts_and_colours
from gan.metrics import precision_recall
from gan.pixels import to_uint8
from gan.sample import export
from gan.train import train
from gan.value import measure_value
from gan.value_report import BOTH, CLASSICAL, ONLY, REAL, SYNTHETIC, at
from value import MARKER, fresh_folder, random_split

CPU = torch.device("cpu")
PER_CLASS = 100  # images per class each GAN is judged on
ORACLE_STEPS = 1500

# name -> {section.field: value} on top of the defaults (the class term at 1 since this benchmark chose it).
CANDIDATES = {
    "no class term": {"train.class_weight": 0.0},  # the earlier default
    "class-balanced": {"data.class_balance": True, "train.class_weight": 0.0},
    "class term 1": {"train.class_weight": 1.0},
    "cbn + class term 1": {"model.g_conditioning": "cbn", "train.class_weight": 1.0},
    "per-class": {"model.conditional": "per-class", "train.class_weight": 0.0},
    "per-class half width": {"model.conditional": "per-class", "train.class_weight": 0.0, "model.g_channels": 32,
                             "model.d_channels": 32},
    "transitional": {"train.class_blend_steps": 2000, "train.class_weight": 0.0},
}


def quiet(_: str) -> None:
    pass


def prepare(name: str, out: Path) -> tuple[Path, Path]:
    """The set's (GAN training folder, held-out folder), written once into OUT/data."""
    data = out / "data"
    if not data.exists():
        if name in ("digits", "colour-digits"):
            write_split(data, 10, colour=name == "colour-digits")
            (data / "test").rename(data / "held-out")
        else:
            random_split(data, 50)
    return data / "train", data / "held-out"


def load(folder: Path, channels: int):
    return load_dataset(DataConfig(path=str(folder), resolution=32, channels=channels), quiet)


def independent_classifier(held_out, train_set, out: Path) -> tuple[torch.nn.Module, tuple[float, list]]:
    """A SmallCNN trained on the held-out images with shifts and colour changes (cached), and its accuracy (overall,
    per class) on the GAN's training images, which it never saw: the most agreement real images get."""
    path = out / "independent.pt"
    model = SmallCNN(held_out.images.shape[1], len(held_out.class_names))
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        model.eval()
    else:
        augment = _shifts_and_colours(mirror=False, generator=torch.Generator().manual_seed(0))
        model = train_classifier(TrainingSet(held_out.images, held_out.labels), len(held_out.class_names),
                                 ORACLE_STEPS, 64, 0, CPU, augment)
        torch.save(model.state_dict(), path)
    return model, accuracy(predict(model, train_set.images, CPU), train_set.labels, len(held_out.class_names))


def judge_run(run: Path, oracle: torch.nn.Module, held_out) -> dict:
    """Agreement per class of PER_CLASS unfiltered samples of best.pt, and per-class recall in the oracle's features."""
    G = load_generator(load_checkpoint(pick_checkpoint(str(run), "")), CPU)
    classes = G.num_classes
    labels = torch.arange(classes).repeat_interleave(PER_CLASS)
    images = torch.cat([to_uint8(b) for b in generate(G, list(range(len(labels))), labels.tolist(), 250, CPU)])
    _, per_class = accuracy(predict(oracle, images, CPU), labels, classes)
    fake_features, real_features = embed(oracle, images, CPU), embed(oracle, held_out.images, CPU)
    recall = [precision_recall(real_features[held_out.labels == c], fake_features[labels == c])["recall"]
              for c in range(classes)]
    return {"agreement": statistics.mean(per_class), "per_class": per_class, "recall": statistics.mean(recall)}


def downstream(run: Path, train_dir: Path, held_dir: Path, reuse: bool) -> dict:
    """What the run's images do for a classifier, as a user would measure it: gan sample --per-real 1 (label filter
    on), then gan value --classical over the default shares, tested on the held-out images (with `reuse`, an earlier
    measurement of the run is read back)."""
    report_file = run / "value" / "value.json"
    synthetic = export(SampleConfig(run=str(run), per_real=1.0, out=str(run / "synthetic"), overwrite=True), quiet)
    if reuse and report_file.exists():
        report = json.loads(report_file.read_text())
    else:
        report = measure_value(ValueConfig(train=str(train_dir), test=str(held_dir), synthetic=str(synthetic.out),
                                           classical=True, out=str(run / "value"), overwrite=True), quiet).report
    c, best = report["conditions"], report["share_sweep"]["best"]
    shares = [float(share) for share in report["share_sweep"]["gains"]]

    def gain(a: str, b: str) -> float:
        return 100 * (c[a]["mean"] - c[b]["mean"])

    return {"real": 100 * c[REAL]["mean"], "classical": 100 * c[CLASSICAL]["mean"], "best": best,
            "synthetic": max(gain(at(SYNTHETIC, share), REAL) for share in shares),
            "both": gain(at(BOTH, best), CLASSICAL), "only": 100 * c[ONLY]["mean"] / c[REAL]["mean"],
            "exported": len(synthetic.files)}


def print_downstream(name: str, seed, d: dict) -> None:
    print(f"| {name} | {seed} | {d['exported']} | {d['real']:.1f} | {d['classical']:.1f} | {d['synthetic']:+.1f} | "
          f"{d['best']:g} | {d['both']:+.1f} | {d['only']:.0f}% |", flush=True)


def trained_run(cfg: RunConfig, reuse: bool) -> Path:
    """The run for `cfg`: trained now, or with `reuse` the newest earlier run of the same name that reached --steps."""
    earlier = sorted(Path(cfg.train.out).glob(f"*-{cfg.train.name.replace(' ', '-')}"))
    if reuse and earlier and (earlier[-1] / f"checkpoint-{cfg.train.steps:07d}.pt").exists():
        return earlier[-1]
    return train(cfg, log=quiet).run_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("digits", "colour-digits", "emoji"), default="digits")
    parser.add_argument("--candidates", default="no class term,class term 1", help=f"comma-separated from: {', '.join(CANDIDATES)}")
    parser.add_argument("--seeds", default="0,1", help="GAN seeds, comma-separated")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", default="")
    parser.add_argument("--value", action="store_true", help="also export and run gan value --classical per run")
    parser.add_argument("--reuse", action="store_true", help="judge the newest earlier run of each name that "
                        "finished, and read back its gan value report, instead of training and measuring again")
    args = parser.parse_args()
    out = Path(args.out or f"/tmp/gan-labels-{args.set}")
    if not (out / MARKER).exists():
        fresh_folder(out, MARKER)
    train_dir, held_dir = prepare(args.set, out)
    channels = 1 if args.set == "digits" else 3
    train_set, held_out = load(train_dir, channels), load(held_dir, channels)
    oracle, (right, right_per_class) = independent_classifier(held_out, train_set, out)
    names = held_out.class_names
    print(f"{args.set}: {len(train_set)} training images, {len(held_out)} held out; the independent classifier is "
          f"{100 * right:.1f}% right on the training images, which it never saw\n")
    print(f"| candidate | steps | GAN seed | agreement | worst class | {' | '.join(names)} | recall | minutes |")
    print("|---|---|---|---|---|" + "---|" * len(names) + "---|---|")
    print(f"| real training images | | | {100 * right:.1f}% | {100 * min(right_per_class):.0f}% | "
          f"{' | '.join(f'{100 * a:.0f}' for a in right_per_class)} | | |", flush=True)
    results = {}
    for name in args.candidates.split(","):
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = RunConfig()
            cfg.data.path, cfg.data.resolution = str(train_dir), 32
            t = cfg.train
            t.steps, t.seed, t.out, t.name, t.tensorboard = args.steps, seed, str(out / "runs"), f"{name}-{seed}", False
            apply(cfg, CANDIDATES[name])
            started = time.perf_counter()
            run = trained_run(cfg, args.reuse)
            minutes = (time.perf_counter() - started) / 60
            m = judge_run(run, oracle, held_out)
            if args.value:
                m["downstream"] = downstream(run, train_dir, held_dir, args.reuse)
            rows.append(m)
            results.setdefault(name, []).append((seed, m))
            per = " | ".join(f"{100 * a:.0f}" for a in m["per_class"])
            print(f"| {name} | {args.steps} | {seed} | {100 * m['agreement']:.1f}% | {100 * min(m['per_class']):.0f}% | "
                  f"{per} | {m['recall']:.2f} | {minutes:.1f} |", flush=True)
        if len(rows) > 1:
            per = " | ".join(f"{100 * statistics.mean(r['per_class'][c] for r in rows):.0f}" for c in range(len(names)))
            agreement = statistics.mean(r["agreement"] for r in rows)
            worst = min(statistics.mean(r["per_class"][c] for r in rows) for c in range(len(names)))
            print(f"| **{name}, mean** | {args.steps} | | **{100 * agreement:.1f}%** | {100 * worst:.0f}% | {per} | "
                  f"{statistics.mean(r['recall'] for r in rows):.2f} | |", flush=True)
    if args.value:
        print("\n| candidate | GAN seed | exported | real (%) | real + classical (%) | + synthetic over real, best "
              "share (points) | best share | + synthetic over real + classical at it (points) | synthetic only "
              "/ real |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, rows in results.items():
            for seed, m in rows:
                print_downstream(name, seed, m["downstream"])
            if len(rows) > 1:
                mean = {key: statistics.mean(m["downstream"][key] for _, m in rows)
                        for key in rows[0][1]["downstream"] if key != "best"}
                print_downstream(f"**{name}, mean**", "", {**mean, "best": float("nan")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
