"""Does gan grow's verdict hold on images it never saw? Runs the whole journey per seed on a labelled set with
headroom, then measures what it handed over with a separate gan value on a truly held-out test set.

    python benchmarks/grow.py --set digits [--seeds 0,1,2] [--budget 5m] [--steps 3000] [--out /tmp/gan-grow]

Sets (nothing downloaded, nothing committed):
- digits: scikit-learn's handwritten digits, --per-class of each class (default 30) given to gan grow, which holds
  out 20% of them; the other digits (about 1,500) are the truly held-out test set.
- emoji: the bundled emoji, 50 per class given to gan grow; the other 309 are the truly held-out test set.

Per seed it prints grow's verdict with the kind of synthetic images it chose (sampled per class, or anchored to each
real image) and their per-seed gains on its own held-out share over its bar (the better of real images alone and
with classical augmentation), the other kind's gains over classical augmentation, the same comparison on the truly
held-out set (train: every image given to grow; synthetic: grow's export of the kind and share it chose; 3
classifier seeds, paired; the bar: the better of the two there), whether the two verdicts agree, and the minutes
each took.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from gan.command_config import GrowConfig, ValueConfig
from gan.digits import write_split
from gan.grow import MIN_GAIN, grow
from gan.value import measure_value
from gan.value_report import BOTH, CLASSICAL, REAL, at
from value import random_split


def quiet(_: str) -> None:
    pass


def prepare(name: str, per_class: int, out: Path) -> tuple[Path, Path]:
    """(the folder given to gan grow, the truly held-out folder), written once into OUT/data."""
    data = out / "data"
    if not data.exists():
        if name == "digits":
            write_split(data, per_class)
            (data / "test").rename(data / "held-out")
        else:
            random_split(data, 50)
    return data / "train", data / "held-out"


def helped(gains: list[float]) -> bool:
    return sum(gains) / len(gains) >= MIN_GAIN and min(gains) > 0


def held_out_check(given: Path, held_out: Path, synthetic: Path, share: float, out: Path) -> tuple[list, list]:
    """On the truly held-out images: the mean accuracy of real, real + classical and real + classical + synthetic,
    and the per-seed gains of the last over the better of the first two (grow's bar)."""
    shutil.rmtree(out, ignore_errors=True)
    report = measure_value(ValueConfig(train=str(given), test=str(held_out), synthetic=str(synthetic), classical=True,
                                       synthetic_ratio=f"{share:g}", conditions="real,classical,both", out=str(out),
                                       device="cpu"), log=quiet).report
    results = report["conditions"]
    accuracies = [results[kind]["accuracy"] for kind in (REAL, CLASSICAL, at(BOTH, None))]
    bar = max(accuracies[:2], key=sum)
    gains = [100 * (a - b) for a, b in zip(accuracies[2], bar)]
    return gains, [100 * sum(values) / len(values) for values in accuracies]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("digits", "emoji"), default="digits")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", default="/tmp/gan-grow")
    args = parser.parse_args()
    out = Path(args.out) / args.set
    given, held_out = prepare(args.set, args.per_class, out)
    print(f"{args.set}: {sum(1 for _ in given.rglob('*.png'))} images given to gan grow, "
          f"{sum(1 for _ in held_out.rglob('*.png'))} truly held out; budget {args.budget}, at most {args.steps} steps")
    print("| seed | grow: verdict | grow: kind | grow: gains per seed | other kind's | held out: real | real+classical | "
          "+ synthetic | gains per seed | agree | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        began = time.perf_counter()
        journey = out / f"journey-{seed}"
        result = grow(GrowConfig(data=str(given), out=str(journey), budget=args.budget, steps=args.steps, seed=seed,
                                 device="cpu"), log=quiet)
        stages = json.loads((journey / "journey.json").read_text())["stages"]
        mode, grow_gains = stages["hand over"]["mode"], stages["hand over"]["gains"]
        other = next(m for m in ("sampled", "anchored") if m != mode)
        share, over = stages[f"measure {mode}"]["share"], stages["hand over"]["over"]
        other_gains = ", ".join(f"{g:+.1f}" for g in stages[f"measure {other}"]["gains"]) or "-"
        if grow_gains:
            gains, (real, classical, grown) = held_out_check(given, held_out, Path(stages[mode]["folder"]), share,
                                                             out / f"check-{seed}")
            check = f"{real:.1f} | {classical:.1f} | {grown:.1f} (x{share:g}) | {', '.join(f'{g:+.1f}' for g in gains)}"
            agree = helped(gains) == result.helped
        else:
            check, agree = "- | - | - | -", not result.helped
        print(f"| {seed} | {'helped' if result.helped else 'did not help'} | {mode} | "
              f"{', '.join(f'{g:+.1f}' for g in grow_gains) or '-'} over {over} | {other}: {other_gains} | {check} | "
              f"{'yes' if agree else 'NO'} | {(time.perf_counter() - began) / 60:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
