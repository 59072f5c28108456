"""Which demo convinces? Candidate settings for `gan demo` on its 200 handwritten digits, each trained from every
--seeds seed (seed 0 is what `make demo` trains), scored as the demo's own `gan eval` does (KID, recall, label
agreement by the run's judge), judged by an independent classifier trained on the 1,597 digits the demo does not
train on (agreement overall and in the worst class), and exported as the demo does; writes docs/demo.png with the
exported grids of seed 0 side by side, in the order of the table.

    python benchmarks/demo.py [--only NAME ...] [--seeds 0,1,2] [--out /tmp/gan-demo]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gan.cli import DEMO_STEPS, demo_config, demo_data
from gan.command_config import EvalConfig, SampleConfig
from gan.evaluate import evaluate_run
from gan.sample import export
from gan.train import train
from labels import independent_classifier, judge_run, load

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = {  # name: (steps, overrides of (section, field))
    f"widths 64, {DEMO_STEPS} steps (the demo)": (DEMO_STEPS, {}),
    f"widths 64, {DEMO_STEPS} steps, no class term (the earlier default)": (DEMO_STEPS, {("train", "class_weight"): 0.0}),
    f"widths 32, {DEMO_STEPS} steps": (DEMO_STEPS, {("model", "g_channels"): 32, ("model", "d_channels"): 32}),
}


def quiet(_: str) -> None:
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--seeds", default="0", help="GAN seeds, comma-separated")
    parser.add_argument("--out", default="/tmp/gan-demo")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    data = demo_data(out)
    train_set, held_out = load(data, 1), load(data.parent / "test", 1)
    oracle, _ = independent_classifier(held_out, train_set, out)
    rows, grids = [], []
    for name, (steps, overrides) in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        for seed in [int(s) for s in args.seeds.split(",")]:
            cfg = demo_config(str(data), steps, str(out))
            cfg.train.seed = seed
            for (section, field), value in overrides.items():
                setattr(getattr(cfg, section), field, value)
            started = time.perf_counter()
            run = train(cfg, log=quiet).run_dir
            minutes = (time.perf_counter() - started) / 60
            report = evaluate_run(EvalConfig(run=str(run)), log=quiet).report
            grid = run / "synthetic-grid.png"
            export(SampleConfig(run=str(run), count=200, out=str(run / "synthetic"), grid=str(grid)), log=quiet)
            if seed == 0:
                grids.append(np.asarray(Image.open(grid).convert("RGB")))
            rows.append((name, seed, minutes, report, judge_run(run, oracle, held_out)))
            print(f"{name}, seed {seed}: {minutes:.1f} min", file=sys.stderr, flush=True)
    print("\n| demo settings | GAN seed | training (min) | KID x1e3 | recall | agreement (run's judge) | agreement "
          "(independent) | worst class (independent) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, seed, minutes, r, m in rows:
        print(f"| {name} | {seed} | {minutes:.1f} | {1e3 * r['kid']:.2f} | {r['recall']:.2f} | "
              f"{100 * r['label_agreement']:.0f}% | {100 * m['agreement']:.1f}% | {100 * min(m['per_class']):.0f}% |")
    if not grids:
        return 0
    height = max(g.shape[0] for g in grids)  # the label filter may leave a class without a row
    grids = [np.pad(g, ((0, height - g.shape[0]), (0, 0), (0, 0)), constant_values=255) for g in grids]
    gap = np.full((height, 12, 3), 255, dtype=np.uint8)
    target = ROOT / "docs" / "demo.png"
    Image.fromarray(np.concatenate([p for g in grids for p in (g, gap)][:-1], axis=1)).save(target)
    print(f"\nexported grids side by side: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
