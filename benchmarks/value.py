"""Does it help? The whole loop on the bundled emoji: a small labelled training split (10 random emoji per class),
every other emoji held out as the real test set; a conditional GAN trained on the small split with the defaults; synthetic
images exported per class from its best checkpoint; then `gan value` (real / classical / synthetic / both).

    python benchmarks/value.py [--steps 3000] [--per-class 10] [--ratios 1,3] [--seeds 3] [--out DIR] [--reuse-gan]

Prints the `gan value` table for each synthetic ratio, and what explains the result: the GAN's scores on its
training split (KID, precision, recall, per class), its copy rate, and how many synthetic images a classifier
trained on the real split puts in the class they were generated for.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from pathlib import Path

from gan.command_config import EvalConfig, SampleConfig, ValueConfig
from gan.config import RunConfig
from gan.evaluate import evaluate_run, format_report
from gan.sample import export
from gan.train import train
from gan.value import measure_value


ROOT = Path(__file__).resolve().parent.parent
MARKER = ".gan-value-benchmark"  # only a folder holding this is ever emptied


def quiet(_: str) -> None:
    pass


def fresh_folder(out: Path, marker: str) -> None:
    """An empty `out` for a new benchmark run; a folder that holds no `marker` (not one of ours) is never emptied."""
    if out.exists() and not (out / marker).exists():
        sys.exit(f"{out} exists and is not an earlier benchmark folder; give an --out that is new or one of ours")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / marker).touch()


def print_value_table(report: dict) -> None:
    """`gan value`'s table, its paired gains and what explains them (label agreement, copies, recall)."""
    print("| configuration | test accuracy (%) | " + " | ".join(report["classes"]) + " |")
    print("|---|---|" + "---|" * len(report["classes"]))
    for name, r in report["conditions"].items():
        per = " | ".join("-" if r["per_class"][c] is None else f"{100 * r['per_class'][c]:.0f}" for c in report["classes"])
        print(f"| {name} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f} | {per} |")
    for name, gain in report["gains"].items():
        print(f"  {name}: {gain['mean']:+.1f} ± {gain['half_width'] or 0:.1f} points (paired, 95%)")
    d = report.get("diagnosis")
    if d:
        per = ", ".join(f"{c} {100 * v:.0f}%" for c, v in d["label_agreement"]["per_class"].items() if v is not None)
        print(f"  label agreement ({d['judged_by']} classifier): {100 * d['label_agreement']['mean']:.1f}% ({per})")
        print(f"  copies {100 * d['copy_rate']:.1f}% (reals {100 * d['real_copy_rate']:.1f}%), recall {d['recall']:.2f}")
    if report["harm"]:
        print(f"  {report['harm']}")
    print(f"  verdict: {report['verdict']}")


def random_split(out: Path, per_class: int, seed: int = 0) -> None:
    """out/train: `per_class` random emoji of each class; out/held-out: all the others. Random, because the files
    are sorted by code point and neighbours are alike (the first 'animals' are plants)."""
    rng = random.Random(seed)
    for folder in sorted(p for p in (ROOT / "data" / "emoji").iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.png"))
        rng.shuffle(files)
        for target, chosen in ((out / "train", files[:per_class]), (out / "held-out", files[per_class:])):
            (target / folder.name).mkdir(parents=True, exist_ok=True)
            for f in chosen:
                shutil.copy(f, target / folder.name / f.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="GAN training steps")
    parser.add_argument("--per-class", type=int, default=10, help="real training images per class")
    parser.add_argument("--synthetic-per-class", type=int, default=300, help="synthetic images exported per class")
    parser.add_argument("--ratios", default="1,3", help="synthetic images per real one, comma-separated")
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds per configuration")
    parser.add_argument("--epochs", type=int, default=100, help="classifier epochs (passes over the real split)")
    parser.add_argument("--out", default="/tmp/gan-value-benchmark", help="work folder (emptied unless --reuse-gan)")
    parser.add_argument("--reuse-gan", action="store_true", help="keep the GAN run and export of an earlier call")
    args = parser.parse_args()

    out = Path(args.out)
    train_dir, test_dir, synthetic, runs = out / "train", out / "held-out", out / "synthetic", out / "runs"
    started = time.perf_counter()
    if not args.reuse_gan:
        fresh_folder(out, MARKER)
        random_split(out, args.per_class)
        cfg = RunConfig()
        cfg.data.path, cfg.data.resolution = str(train_dir), 32
        cfg.train.steps, cfg.train.out, cfg.train.name = args.steps, str(runs), "emoji-split"
        cfg.train.eval_every = cfg.train.checkpoint_every = cfg.train.image_every = max(1, args.steps // 6)
        run = train(cfg, log=quiet).run_dir
        print(f"GAN: {args.steps} steps on {args.per_class} emoji per class at 32 px in "
              f"{(time.perf_counter() - started) / 60:.1f} min")
        export(SampleConfig(run=str(run), per_class=args.synthetic_per_class, out=str(synthetic)), log=quiet)
    run = sorted(runs.iterdir())[-1]
    evaluation = evaluate_run(EvalConfig(run=str(run), nearest=True), log=quiet)
    print(f"the GAN's best checkpoint (exported) is step {evaluation.report['step']}; scored against its "
          f"{evaluation.report['num_real']} training emoji:")
    print(format_report(evaluation.report))
    for ratio in (float(r) for r in args.ratios.split(",")):
        value = measure_value(ValueConfig(train=str(train_dir), test=str(test_dir), synthetic=str(synthetic),
                                          classical=True, synthetic_ratio=ratio, seeds=args.seeds,
                                          epochs=args.epochs, out=str(out / f"value-ratio-{ratio:g}"),
                                          overwrite=True), log=quiet)
        report = value.report
        print(f"\n--synthetic-ratio {ratio:g} ({report['synthetic_used']} synthetic images with "
              f"{report['train_images']} real ones; tested on {report['test_images']} held-out real emoji; "
              f"{report['seconds']:.0f} s):")
        print_value_table(report)
    print(f"\ntotal {(time.perf_counter() - started) / 60:.1f} min; reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
