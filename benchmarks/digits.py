"""Labels that hold? The whole loop on labelled handwritten digits: 20 per class (200) to train on, the other 1,597
as the real test set (scikit-learn's bundled digits, see benchmarks/digits_data.py). A conditional GAN trains on the
200 with the defaults; 300 images per class are exported from best.pt, with the label filter (the default) and
without it; then `gan value --classical` on each.

    python benchmarks/digits.py [--steps 3000] [--seeds 3] [--out /tmp/gan-digits] [--reuse-gan]

Prints:
- the `gan value` table for each export: real, real + classical, real + synthetic, real + classical + synthetic,
  synthetic only, with the paired gains, and label agreement per class as `gan value` measures it;
- label agreement per class by the run's own judge (gan eval) and by an independent classifier trained on the
  1,597 test digits, which the GAN never saw;
- which checkpoint each best.pt criterion (KID, mean per-class KID, label agreement) would have picked, beside what
  every evaluated checkpoint's images do for a classifier;
- what judging labels costs training: the judge's one training and each evaluation's agreement, against the
  time of the steps between evaluations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from conditioning import oracle
from gan.digits import write_split
from gan.checkpoint import list_checkpoints, load_checkpoint
from gan.classify import TrainingSet, accuracy, predict, train_classifier
from gan.command_config import EvalConfig, SampleConfig, ValueConfig
from gan.config import DataConfig, RunConfig
from gan.data import load_dataset
from gan.data import training_images
from gan.evaluate import evaluate_run, format_report
from gan.generate import generate, load_generator
from gan.judge import agreement, train_judge
from gan.pixels import to_uint8
from gan.sample import export
from gan.train import train
from gan.value import measure_value
from value import fresh_folder, print_value_table

MARKER = ".gan-digits-benchmark"  # only a folder holding this is ever emptied
CPU = torch.device("cpu")
CHOICE_PER_CLASS = 100  # images per class made from every checkpoint for the checkpoint-choice table


def quiet(_: str) -> None:
    pass


def oracle_agreement(checkpoint: Path, judge: torch.nn.Module, per_class: int, first_class: int = 0) -> dict:
    """Agreement of `per_class` unfiltered samples of every class, by the independent classifier of all 10 digits
    (the run's class c is digit first_class + c)."""
    G = load_generator(load_checkpoint(str(checkpoint)), CPU)
    labels = torch.arange(G.num_classes).repeat_interleave(per_class)
    images = torch.cat([to_uint8(b) for b in generate(G, list(range(len(labels))), labels.tolist(), 250, CPU)])
    digits = labels + first_class
    return {**agreement(torch.nn.functional.one_hot(predict(judge, images, CPU), 10).float(), digits,
                        [str(c) for c in range(10)]), "images": images, "labels": labels}


def checkpoint_choice(run: Path, train_dir: Path, test_dir: Path, judge: torch.nn.Module) -> None:
    """Each evaluated checkpoint: its scores as training logged them, and what its images do downstream (one
    classifier seed: synthetic only, and real + synthetic)."""
    records = {r["step"]: r for r in map(json.loads, (run / "stats.jsonl").read_text().splitlines())
               if "Metrics/KID" in r}
    real = load_dataset(DataConfig(path=str(train_dir), resolution=32, channels=1), quiet)
    test = load_dataset(DataConfig(path=str(test_dir), resolution=32, channels=1), quiet)
    rows = []
    print("\n| step | KID x1e3 | mean per-class KID x1e3 | agreement (run's judge) | agreement (independent) | "
          "synthetic only (%) | real + synthetic (%) |")
    print("|---|---|---|---|---|---|---|")
    for file in list_checkpoints(run):
        step = load_checkpoint(str(file)).step
        if step not in records:
            continue
        made = oracle_agreement(file, judge, CHOICE_PER_CLASS)
        steps = 50 * 4  # gan value's default: 50 passes over the 200 real images in batches of 64
        only = train_classifier(TrainingSet(made["images"], made["labels"]), 10, steps, 64, 0, CPU)
        mixed = train_classifier(TrainingSet(torch.cat([real.images, made["images"][::5]]),
                                             torch.cat([real.labels, made["labels"][::5]])), 10, steps, 64, 0, CPU)
        scores = [accuracy(predict(m, test.images, CPU), test.labels, 10)[0] for m in (only, mixed)]
        r = records[step]
        rows.append((step, r["Metrics/KID"], r["Metrics/class_KID"], r["Metrics/label_agreement"], *scores))
        print(f"| {step} | {1e3 * r['Metrics/KID']:.2f} | {1e3 * r['Metrics/class_KID']:.2f} | "
              f"{100 * r['Metrics/label_agreement']:.1f}% | {100 * made['label_agreement']:.1f}% | "
              f"{100 * scores[0]:.1f} | {100 * scores[1]:.1f} |", flush=True)
    best_downstream = max(rows, key=lambda r: r[4] + r[5])[0]
    for name, pick in (("KID", min(rows, key=lambda r: r[1])), ("mean per-class KID", min(rows, key=lambda r: r[2])),
                       ("label agreement", max(rows, key=lambda r: r[3]))):
        print(f"  best.pt by {name}: step {pick[0]} (synthetic only {100 * pick[4]:.1f}%, real + synthetic "
              f"{100 * pick[5]:.1f}%)")
    print(f"  best downstream (synthetic only + real + synthetic): step {best_downstream}")


def judging_cost(run: Path) -> None:
    """Seconds the judge's one training and one evaluation's agreement take, against the training steps."""
    cfg = load_checkpoint(str(run)).saved_config()
    images = training_images(cfg, "the cost benchmark", quiet)
    started = time.perf_counter()
    judge = train_judge(images, cfg, CPU)
    training = time.perf_counter() - started
    samples = torch.cat([to_uint8(b) for b in generate(load_generator(load_checkpoint(str(run)), CPU),
                                                        list(range(500)), [i % 10 for i in range(500)], 250, CPU)])
    times = []
    for _ in range(5):
        started = time.perf_counter()
        agreement(judge.probabilities(samples, CPU), torch.arange(500) % 10, cfg.data.class_names)
        times.append(time.perf_counter() - started)
    speeds = [r["Speed/img_per_s"] for r in map(json.loads, (run / "stats.jsonl").read_text().splitlines())
              if "Speed/img_per_s" in r]
    step_seconds = cfg.train.batch_size / statistics.median(speeds)
    default = RunConfig().train
    evaluations = default.steps // default.eval_every
    overhead = (training + evaluations * statistics.median(times)) / (default.steps * step_seconds)
    print(f"\njudging labels: the judge trains once in {training:.1f} s, an evaluation's agreement (500 samples) takes "
          f"{1e3 * statistics.median(times):.0f} ms (median of 5); a step takes {1e3 * step_seconds:.0f} ms (median). "
          f"Over a default run ({default.steps} steps, evaluated every {default.eval_every}) that is "
          f"{100 * overhead:.1f}% more time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="GAN training steps")
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds per configuration in gan value")
    parser.add_argument("--out", default="/tmp/gan-digits", help="work folder (emptied unless --reuse-gan)")
    parser.add_argument("--reuse-gan", action="store_true", help="keep the GAN run and exports of an earlier call")
    args = parser.parse_args()
    out = Path(args.out)
    data, runs = out / "data", out / "runs"
    train_dir, test_dir = data / "train", data / "test"
    started = time.perf_counter()
    if not args.reuse_gan:
        fresh_folder(out, MARKER)
        write_split(data, 20)
        cfg = RunConfig()
        cfg.data.path, cfg.data.resolution = str(train_dir), 32
        cfg.train.steps, cfg.train.out, cfg.train.name = args.steps, str(runs), "digits"
        # Evaluated (and kept) every sixth of the run, so that the checkpoint choice has something to choose from.
        cfg.train.eval_every = cfg.train.checkpoint_every = max(1, args.steps // 6)
        cfg.train.keep = 100
        run = train(cfg, log=quiet).run_dir
        print(f"GAN: {args.steps} steps on 20 digits per class at 32 px in {(time.perf_counter() - started) / 60:.1f} min")
        for name, label_filter in (("synthetic", True), ("synthetic-unfiltered", False)):
            result = export(SampleConfig(run=str(run), per_class=300, out=str(out / name), label_filter=label_filter),
                            log=quiet)
            rejected = {c: r.get("label", 0) for c, r in result.rejected_by_class.items()}
            print(f"exported {len(result.files)} images to {name}; label filter rejected {rejected}")
    run = sorted(runs.iterdir())[-1]
    judge = oracle(test_dir, out)
    evaluation = evaluate_run(EvalConfig(run=str(run)), log=quiet)
    print(f"best.pt is step {evaluation.report['step']} (by {load_checkpoint(str(run / 'best.pt')).state['best_by']}); "
          f"scored against its 200 training digits:")
    print(format_report(evaluation.report))
    independent = oracle_agreement(run / "best.pt", judge, 300)
    per = ", ".join(f"{c} {100 * v:.0f}%" for c, v in independent["label_agreement_classes"].items())
    print(f"independent classifier (trained on the test digits): {100 * independent['label_agreement']:.1f}% ({per}), "
          f"before the label filter")
    for name in ("synthetic", "synthetic-unfiltered"):
        report = measure_value(ValueConfig(train=str(train_dir), test=str(test_dir), synthetic=str(out / name),
                                           classical=True, seeds=args.seeds, ops="rotate,crop,blur,scale,translate,"
                                           "brightness,contrast", out=str(out / f"value-{name}"), overwrite=True),
                               log=quiet).report
        print(f"\ngan value with {name} ({report['synthetic_used']} synthetic, {report['train_images']} real, "
              f"{report['test_images']} real test digits, {report['seconds']:.0f} s):")
        print_value_table(report)
    checkpoint_choice(run, train_dir, test_dir, judge)
    judging_cost(run)
    print(f"\ntotal {(time.perf_counter() - started) / 60:.1f} min; reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
