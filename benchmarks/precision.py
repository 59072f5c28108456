"""Does bf16 autocast hurt training? The demo's run (emoji, 32 px, 600 steps, seed 0) in fp32 and in bf16.

    python benchmarks/precision.py [--steps 600] [--out /tmp/gan-precision] [--reuse]

Prints, for each precision, the losses averaged over stretches of the run, the evaluations (KID, FID, precision,
recall, in the `random` feature space unless Inception weights are on disk) and the training speed; writes
docs/precision.png: the final sample grids side by side (fp32 left, bf16 right). --reuse reads runs already in --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from PIL import Image, ImageDraw

from gan.config import RunConfig
from gan.train import train

ROOT = Path(__file__).resolve().parent.parent
PRECISIONS = ("fp32", "bf16")


def run(precision: str, steps: int, out: Path) -> Path:
    cfg = RunConfig()
    cfg.data.path = str(ROOT / "data" / "emoji")
    cfg.data.resolution = 32
    t = cfg.train
    t.steps, t.precision, t.name, t.out = steps, precision, precision, str(out)
    t.image_every, t.checkpoint_every, t.eval_every = steps // 5, steps, steps // 3
    return train(cfg).run_dir


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines() if line.strip()]


def summarise(name: str, run_dir: Path, steps: int) -> None:
    stats = records(run_dir)
    losses = [r for r in stats if "Loss/D" in r]
    print(f"\n{name} ({run_dir})")
    for stretch in range(3):
        low, high = stretch * steps // 3, (stretch + 1) * steps // 3
        part = [r for r in losses if low < r["step"] <= high]
        print(f"  steps {low + 1:>4}-{high:<4} Loss/D {statistics.mean(r['Loss/D'] for r in part):.3f}  "
              f"Loss/G {statistics.mean(r['Loss/G'] for r in part):.3f}  "
              f"{statistics.median(r['Speed/img_per_s'] for r in part):,.0f} img/s")
    for r in stats:
        if "Metrics/KID" in r:
            print(f"  step {r['step']:>4}: KID {r['Metrics/KID']:.4f}  FID {r['Metrics/FID']:.2f}  "
                  f"precision {r['Metrics/precision']:.2f}  recall {r['Metrics/recall']:.3f}")


def side_by_side(grids: list[Path], labels: list[str], path: Path) -> None:
    images = [Image.open(g).convert("RGB") for g in grids]
    header, gap = 18, 8
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, header + max(i.height for i in images)), "white")
    draw, x = ImageDraw.Draw(canvas), 0
    for image, label in zip(images, labels):
        draw.text((x + 4, 3), label, fill="black")
        canvas.paste(image, (x, header))
        x += image.width + gap
    canvas.save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default="/tmp/gan-precision")
    parser.add_argument("--reuse", action="store_true", help="summarise the newest runs already in --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    runs = {}
    for precision in PRECISIONS:
        existing = sorted(out.glob(f"*-{precision}")) if args.reuse else []
        runs[precision] = existing[-1] if existing else run(precision, args.steps, out)
    for precision, run_dir in runs.items():
        summarise(precision, run_dir, args.steps)
    grids = [max(run_dir.glob("fakes-*.png")) for run_dir in runs.values()]
    target = ROOT / "docs" / "precision.png"
    side_by_side(grids, [f"{p}, step {g.stem.split('-')[1].lstrip('0')}" for p, g in zip(PRECISIONS, grids)], target)
    print(f"\ngrids side by side: {target}")


if __name__ == "__main__":
    main()
