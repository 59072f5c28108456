"""Which demo convinces? Candidate settings for `gan demo` on the bundled emoji, each trained once from seed 0 as
`make demo` would, then scored against the training images as the demo's own `gan eval` does (KID, recall,
precision, label agreement by the run's judge) and exported as the demo does; writes docs/demo.png with the
exported grids side by side, in the order of the table.

    python benchmarks/demo.py [--only NAME ...] [--out /tmp/gan-demo]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gan.cli import DEMO_DATA, demo_config
from gan.config import EvalConfig, SampleConfig
from gan.evaluate import evaluate_run
from gan.sample import export
from gan.train import train

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = {  # name: (steps, overrides of (section, field))
    "32 px, widths 64, 600 steps": (600, {}),
    "32 px, widths 32, 1500 steps": (1500, {("model", "g_channels"): 32, ("model", "d_channels"): 32}),
    "32 px, widths 32, 1500 steps, mirror": (1500, {("model", "g_channels"): 32, ("model", "d_channels"): 32,
                                                    ("data", "mirror"): True}),
}


def quiet(_: str) -> None:
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--out", default="/tmp/gan-demo")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    rows, grids = [], []
    for name, (steps, overrides) in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        cfg = demo_config(str(DEMO_DATA), steps, str(out))
        for (section, field), value in overrides.items():
            setattr(getattr(cfg, section), field, value)
        started = time.perf_counter()
        run = train(cfg, log=quiet).run_dir
        minutes = (time.perf_counter() - started) / 60
        report = evaluate_run(EvalConfig(run=str(run)), log=quiet).report
        grid = run / "synthetic-grid.png"
        export(SampleConfig(run=str(run), count=200, out=str(run / "synthetic"), grid=str(grid)), log=quiet)
        grids.append(np.asarray(Image.open(grid).convert("RGB")))
        rows.append((name, minutes, report))
        print(f"{name}: {minutes:.1f} min", file=sys.stderr, flush=True)
    print("\n| demo settings | training (min) | KID x1e3 | recall | precision | label agreement |")
    print("|---|---|---|---|---|---|")
    for name, minutes, r in rows:
        print(f"| {name} | {minutes:.1f} | {1e3 * r['kid']:.2f} | {r['recall']:.2f} | {r['precision']:.2f} | "
              f"{100 * r['label_agreement']:.0f}% |")
    height = max(g.shape[0] for g in grids)  # the label filter may leave a class without a row
    grids = [np.pad(g, ((0, height - g.shape[0]), (0, 0), (0, 0)), constant_values=255) for g in grids]
    gap = np.full((height, 12, 3), 255, dtype=np.uint8)
    target = ROOT / "docs" / "demo.png"
    Image.fromarray(np.concatenate([p for g in grids for p in (g, gap)][:-1], axis=1)).save(target)
    print(f"\nexported grids side by side: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
