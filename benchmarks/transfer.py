"""Transfer from a related dataset: does starting from an earlier run beat training from scratch on 10 images per
class? scikit-learn's bundled digits (benchmarks/digits_data.py): a conditional GAN pretrains on every digit 0-4
(about 900 images); then three runs of the same steps on 10 images of each digit 5-9 (new classes): from scratch,
--init-from the pretrained run, and --init-from with --freeze-d 1. Measured on the digits 5-9 no run saw.

    python benchmarks/transfer.py [--pretrain-steps 1000] [--steps 400] [--seeds 0,1] [--out /tmp/gan-transfer]

Prints, per way of starting (mean over the GAN seeds, and +- half their range): held-out KID, recall and precision
(gan eval --real); label agreement by an independent classifier trained on the held-out digits; and gan value's
accuracy on the held-out digits with the 50 real images alone, with 300 synthetic per class (label-filtered,
the default export) mixed in, and with the synthetic ones alone, with the paired gain of mixing them in.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from conditioning import oracle
from digits import oracle_agreement
from gan.digits import write_split
from gan.command_config import EvalConfig, SampleConfig, ValueConfig
from gan.config import RunConfig
from gan.evaluate import evaluate_run
from gan.sample import export
from gan.train import train
from gan.value import measure_value
from value import fresh_folder

MARKER = ".gan-transfer-benchmark"
OLD, NEW = [str(d) for d in range(5)], [str(d) for d in range(5, 10)]
STARTS = {"from scratch": {}, "--init-from": {"init_from": True}, "--init-from --freeze-d 1": {"init_from": True,
                                                                                               "freeze_d": 1}}


def quiet(_: str) -> None:
    pass


def subset(source: Path, classes: list[str], target: Path) -> Path:
    for name in classes:
        shutil.copytree(source / name, target / name)
    return target


def gan_config(data: Path, steps: int, seed: int, out: Path, name: str) -> RunConfig:
    cfg = RunConfig()
    cfg.data.path, cfg.data.resolution, cfg.data.channels = str(data), 32, 1
    cfg.model.g_channels = cfg.model.d_channels = 32  # a quarter of the default's compute: minutes on two cores
    t = cfg.train
    t.steps, t.seed, t.out, t.name, t.tensorboard = steps, seed, str(out), name, False
    t.eval_every = t.checkpoint_every = t.image_every = steps
    return cfg


def measure(run: Path, held_out: Path, fine_tune: Path, judge: torch.nn.Module, out: Path, seeds: int) -> dict:
    report = evaluate_run(EvalConfig(run=str(run), real=str(held_out)), log=quiet).report
    agreement = oracle_agreement(run / "best.pt", judge, 100, first_class=5)["label_agreement"]
    synthetic = out / f"synthetic-{run.name}"
    export(SampleConfig(run=str(run), per_class=300, out=str(synthetic)), log=quiet)
    value = measure_value(ValueConfig(train=str(fine_tune), test=str(held_out), synthetic=str(synthetic), seeds=seeds,
                                      out=str(out / f"value-{run.name}"), overwrite=True), log=quiet).report
    conditions, gains = value["conditions"], value["gains"]
    return {"KID": report["kid"], "recall": report["recall"], "precision": report["precision"],
            "agreement": agreement, "real": conditions["real"]["mean"], "real+synth": conditions["real + synthetic"]["mean"],
            "synth only": conditions["synthetic only"]["mean"], "gain": gains["synthetic images over real images alone"]["mean"] / 100}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=400, help="steps of every run on the 50 new-class digits")
    parser.add_argument("--seeds", default="0,1", help="GAN seeds, comma-separated")
    parser.add_argument("--value-seeds", type=int, default=3, help="classifier seeds in gan value")
    parser.add_argument("--out", default="/tmp/gan-transfer")
    args = parser.parse_args()
    out = Path(args.out)
    fresh_folder(out, MARKER)
    started = time.perf_counter()
    write_split(out / "digits", 10)
    pretrain = subset(out / "digits" / "train", OLD, out / "pretrain")
    for name in OLD:  # all of digits 0-4: the 10 per class of the split and the rest
        for f in (out / "digits" / "test" / name).iterdir():
            shutil.copy(f, pretrain / name / f.name)
    fine_tune = subset(out / "digits" / "train", NEW, out / "fine-tune")
    held_out = subset(out / "digits" / "test", NEW, out / "held-out")
    judge = oracle(out / "digits" / "test", out)
    source = train(gan_config(pretrain, args.pretrain_steps, 0, out / "runs", "pretrain"), log=quiet).run_dir
    print(f"pretrained on {sum(1 for _ in pretrain.rglob('*.png'))} digits 0-4 for {args.pretrain_steps} steps "
          f"({(time.perf_counter() - started) / 60:.1f} min)", file=sys.stderr, flush=True)
    results: dict[str, list[dict]] = {name: [] for name in STARTS}
    for seed in map(int, args.seeds.split(",")):
        for name, start in STARTS.items():
            cfg = gan_config(fine_tune, args.steps, seed, out / "runs", name.replace(" ", "").replace("--", "-"))
            cfg.train.init_from = str(source) if start.get("init_from") else ""
            cfg.train.freeze_d = start.get("freeze_d", 0)
            run = train(cfg, log=quiet).run_dir
            results[name].append(measure(run, held_out, fine_tune, judge, out, args.value_seeds))
            print(f"  {name}, seed {seed}: done ({(time.perf_counter() - started) / 60:.1f} min)", file=sys.stderr,
                  flush=True)

    print(f"\n10 digits per class of 5-9 to train on ({sum(1 for _ in held_out.rglob('*.png'))} held out), "
          f"{args.steps} steps each, 32 px, widths 32; pretrained {args.pretrain_steps} steps on digits 0-4; GAN "
          f"seeds {args.seeds} (mean +- half the range); gan value with {args.value_seeds} classifier seeds\n")
    columns = ["KID", "recall", "precision", "agreement", "real", "real+synth", "synth only", "gain"]
    print("| start | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, runs in results.items():
        cells = []
        for c in columns:
            values = [r[c] for r in runs]
            scale, digits = (1e3, 2) if c == "KID" else (100, 1) if c not in ("recall", "precision") else (1, 2)
            spread = (max(values) - min(values)) / 2 * scale
            cells.append(f"{statistics.mean(values) * scale:.{digits}f} ± {spread:.{digits}f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nKID x1e3; agreement, accuracies and the gain of mixing in synthetic images in %.")
    print(f"total {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
