"""The `gan` command: flags generated from the config dataclasses, one function per subcommand."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

from gan.command_config import EvalConfig, GrowConfig, SampleConfig, ValueConfig, VariantsConfig
from gan.config import RunConfig
from gan.errors import GanError
from gan.files import is_refused
from gan.options import field_types, flag_of, to_dict

def _help_text(field: dataclasses.Field) -> str:
    default = field.default
    if default in ("", dataclasses.MISSING):
        return field.metadata["help"]
    shown = ("on" if default else "off") if isinstance(default, bool) else default
    return f"{field.metadata['help']} (default: {shown})"


def add_config_flags(parser: argparse.ArgumentParser, cls, section: str = "") -> None:
    """One flag per field of `cls` that has help metadata; nested dataclasses become their own help groups.

    Defaults are suppressed in the namespace so that only flags the user typed override a config (this is how
    a resumed run keeps its saved settings).
    """
    hints = field_types(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            group = parser.add_argument_group(f"{field.name} options")
            add_config_flags(group, kind, f"{section}{field.name}.")
            continue
        if "help" not in field.metadata:
            continue
        flag = flag_of(field)
        common = {
            "dest": section + field.name,
            "default": argparse.SUPPRESS,
            "help": _help_text(field),
        }
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, action="append", type=typing.get_args(kind)[0], metavar="NAME", **common)
        else:
            choices = field.metadata["choices"]
            metavar = None if choices else field.name.upper()
            parser.add_argument(flag, type=kind, choices=choices, metavar=metavar, **common)


def apply_flags(cfg, args: argparse.Namespace) -> None:
    """Write the flags the user gave into `cfg` (dest 'section.field' for nested configs)."""
    for dest, value in vars(args).items():
        *sections, name = dest.split(".")
        target = cfg
        for section in sections:
            target = getattr(target, section)
        if dataclasses.is_dataclass(target) and name in {f.name for f in dataclasses.fields(target)}:
            setattr(target, name, value)


def _resumed(args: argparse.Namespace):
    """The checkpoint --resume means; `auto`: the newest checkpoint of the newest run named --name (default: the
    data folder's name) in --out, or None to start that run, so a restarted command carries on by itself."""
    from gan.checkpoint import list_checkpoints, load_checkpoint, newest_run

    if args.resume != "auto":
        return load_checkpoint(args.resume) if args.resume else None
    flags = RunConfig()
    apply_flags(flags, args)
    name = flags.train.name or (Path(flags.data.path).expanduser().resolve().name if flags.data.path else "")
    if not name:
        raise GanError("--resume auto needs --name NAME (or --data DIR) to know which run to continue")
    run = newest_run(flags.train.out, name)
    return load_checkpoint(str(run)) if run and list_checkpoints(run) else None


def cmd_train(args: argparse.Namespace) -> int:
    from gan.distributed import joined  # torch-heavy imports only for the commands that need them
    from gan.train import out_of_patience, train
    from gan.transfer import inherit_shape, load_source

    init_from = getattr(args, "train.init_from", "")
    if args.resume not in ("", "auto") and init_from:
        raise GanError("--resume continues a run and --init-from starts a new one from another: give one of them")
    checkpoint = _resumed(args)
    cfg = checkpoint.saved_config() if checkpoint else RunConfig()
    if init_from and not checkpoint:  # the source's model shape, unless flags say otherwise
        inherit_shape(cfg, load_source(init_from).saved_config())
    apply_flags(cfg, args)
    if args.dry_run:
        cfg.validate()
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    if args.resume == "auto" and checkpoint and checkpoint.step >= cfg.train.steps:
        print(f"{checkpoint.path.parent} is already at step {checkpoint.step} of {cfg.train.steps}: nothing to do")
        return 0  # the job is done: a restarted or requeued command must not fail on it
    if args.resume == "auto" and checkpoint and out_of_patience(checkpoint, cfg):
        print(f"{checkpoint.path.parent} stopped early at step {checkpoint.step}, when --patience "
              f"{cfg.train.patience} ran out: nothing to do (a larger --patience, or 0, trains it on)")
        return 0  # done as well: a requeued command would otherwise train on to the next evaluation each time
    with joined(cfg.train.device) as ranks:
        result = train(cfg, resume=checkpoint, ranks=ranks)
    if ranks.main and not result.interrupted:
        _print_train_summary(result)
    return 0


def _print_train_summary(result) -> None:
    """Where a finished run's files are and what to do next (result: gan.train.TrainResult)."""
    run_dir, step = result.run_dir, result.step
    how, train_on = f"trained to step {step}", f"--steps {2 * step}"
    if result.stopped_early:
        how = f"stopped early at step {step} (--patience: the scores had stopped improving)"
        train_on = "--patience 0   (on to --steps, improving or not)"
    lines = [f"\n{how}. Everything is in {run_dir}/", f"  checkpoint   {result.checkpoint}"]
    if (run_dir / "best.pt").exists():
        lines.append(f"  best         {run_dir / 'best.pt'} (by --best-by; what gan sample and gan eval use)")
    lines += [
        f"  sample grids {run_dir}/fakes-*.png (real images: reals.png)",
        f"  curves       tensorboard --logdir {run_dir.parent}",
        f"  scores       gan eval --run {run_dir} --nearest",
        f"  export       gan sample --run {run_dir} --count 1000 --out synthetic",
        f"  train on     gan train --resume {run_dir} {train_on}",
    ]
    print("\n".join(lines))


SHORT_EXPORT = 3  # every image written is good and listed, but the checks turned down the rest: a script must know


def cmd_sample(args: argparse.Namespace) -> int:
    from gan.sample import export

    cfg = SampleConfig()
    apply_flags(cfg, args)
    result = export(cfg)
    print(f"wrote {len(result.files)} images to {result.out}/ (list: {result.manifest})")
    if result.grid:
        print(f"preview grid: {result.grid}")
    return SHORT_EXPORT if len(result.files) < result.planned else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from gan.evaluate import evaluate_run

    cfg = EvalConfig()
    apply_flags(cfg, args)
    _print_eval(evaluate_run(cfg))
    return 0


def _print_eval(result) -> None:
    from gan.evaluate import format_report

    print(f"\n{format_report(result.report)}\nreport: {result.json}")
    if result.grid:
        print(f"closest pairs (sample left, its nearest training image right): {result.grid}\n"
              f"each sample's nearest training image: {result.nearest_csv}")


def cmd_augment(args: argparse.Namespace) -> int:
    from gan.variants import export_variants

    cfg = VariantsConfig()
    apply_flags(cfg, args)
    result = export_variants(cfg)
    skipped = f"; {len(result.skipped)} unreadable images skipped" if result.skipped else ""
    print(f"wrote {len(result.files)} variants to {result.out}/ (list: {result.manifest}){skipped}")
    return 0


def cmd_value(args: argparse.Namespace) -> int:
    from gan.value import measure_value

    cfg = ValueConfig()
    apply_flags(cfg, args)
    result = measure_value(cfg)
    harm = f"\n{result.report['harm']}." if result.report["harm"] else ""
    print(f"{harm}\n{result.report['verdict']}.\nreport: {result.markdown} (figures: {result.json.name}, chart: "
          f"{result.chart.name})")
    return 0


def cmd_grow(args: argparse.Namespace) -> int:
    from gan.grow import grow

    cfg = GrowConfig()
    apply_flags(cfg, args)
    result = grow(cfg)
    print(f"\n{result.verdict}.\nreport: {result.report}")
    return 0


DEMO_STEPS, DEMO_PER_CLASS = 3000, 20


def demo_config(data: str, steps: int, out: str) -> RunConfig:
    """The demo's run: the defaults at 32 px (benchmarks/labels.py chose the settings on held-out digits)."""
    cfg = RunConfig()
    cfg.data.path, cfg.data.resolution = data, 32
    t = cfg.train
    t.steps, t.name, t.out = steps, "demo", out
    t.image_every, t.checkpoint_every = max(1, steps // 5), steps
    return cfg


def demo_data(out: Path) -> Path:
    """The demo's images: DEMO_PER_CLASS handwritten digits of each class (gan.digits), written once into OUT."""
    from gan.digits import write_split

    folder = out / "demo-digits"
    if not (folder / "train").is_dir():
        write_split(folder, DEMO_PER_CLASS)
    return folder / "train"


def cmd_demo(args: argparse.Namespace) -> int:
    """Train briefly on a few handwritten digits (or --data), export synthetic ones, and say where everything is."""
    from gan.evaluate import evaluate_run
    from gan.sample import export
    from gan.train import train

    data = Path(args.data) if args.data else demo_data(Path(args.out))
    result = train(demo_config(str(data), args.steps, args.out))
    if result.interrupted:
        return 0
    _print_eval(evaluate_run(EvalConfig(run=str(result.run_dir), nearest=True)))
    synthetic = result.run_dir / "synthetic"
    exported = export(SampleConfig(run=str(result.run_dir), count=args.count, out=str(synthetic),
                                   grid=str(result.run_dir / "synthetic-grid.png")))
    folders = sorted({f.parent.name for f in exported.files if f.parent != exported.out})
    layout = f" in class folders {', '.join(folders)}" if folders else ""
    preview = f"  their preview     {exported.grid}\n" if exported.grid else ""
    print(
        f"\ndemo done.\n"
        f"  synthetic images  {exported.out}/ ({len(exported.files)} PNGs{layout}; list: {exported.manifest.name})\n"
        f"{preview}"
        f"  training grids    {result.run_dir}/fakes-*.png (real images: reals.png)\n"
        f"  TensorBoard logs  {result.run_dir}/  ->  .venv/bin/tensorboard --logdir {result.run_dir.parent}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gan", description="Grow a small image dataset with a GAN.")
    commands = parser.add_subparsers(dest="command", required=True)

    grow_parser = commands.add_parser(
        "grow", help="the whole journey: train, export and measure on held-out images, then hand over what helped",
        description="Hold out real images, measure real images and classical augmentation, train the GAN within "
                    "--budget, export through the label and copy filters, measure each share of synthetic images "
                    "over paired seeds, and hand over the images that helped (or say they did not), with "
                    "report.md. Stopped anywhere, the same command carries the journey on.")
    add_config_flags(grow_parser, GrowConfig)
    grow_parser.set_defaults(handler=cmd_grow)

    train = commands.add_parser("train", help="train a GAN on a folder of images (or resume a run)",
                                description="Train a DCGAN on a folder of images; every run gets its own folder.")
    train.add_argument("--resume", metavar="RUN", default="",
                       help="run folder or checkpoint file to continue exactly where it stopped; its saved settings "
                            "apply unless given again as flags. auto: the newest run named --name in --out if it "
                            "has a checkpoint, else a new one (for torchrun restarts and job requeues)")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    add_config_flags(train, RunConfig)
    train.set_defaults(handler=cmd_train)

    sample = commands.add_parser("sample", help="export synthetic images from a trained run",
                                 description="Export synthetic images (one seed each) with a manifest.csv. Exits "
                                             f"with {SHORT_EXPORT} when the label or copy checks left it short of "
                                             "the count asked for (the images written are kept and listed).")
    add_config_flags(sample, SampleConfig)
    sample.set_defaults(handler=cmd_sample)

    evaluate = commands.add_parser("eval", help="score a run: KID, FID, precision/recall, and copies of training images",
                                   description="Score a checkpoint's generator against real images; writes "
                                               "eval-<step>.json into its run folder.")
    add_config_flags(evaluate, EvalConfig)
    evaluate.set_defaults(handler=cmd_eval)

    augment = commands.add_parser("augment", help="write classical variants (rotate, crop, blur ...) of every image",
                                  description="Classical augmentation export: K variants of every image, in the same "
                                              "folder layout, with a manifest.csv.")
    add_config_flags(augment, VariantsConfig)
    augment.set_defaults(handler=cmd_augment)

    value = commands.add_parser("value", help="measure whether synthetic images help a classifier on your data",
                                description="Train the same small classifier on real images, with classical "
                                            "augmentation, with synthetic images and with both; test on held-out "
                                            "real images; report the difference.")
    add_config_flags(value, ValueConfig)
    value.set_defaults(handler=cmd_value)

    demo = commands.add_parser("demo", help="train briefly on 200 handwritten digits and export samples")
    demo.add_argument("--data", default="", help="image folder (default: 20 of each of scikit-learn's handwritten "
                                                 "digits, written into --out)")
    demo.add_argument("--steps", type=int, default=DEMO_STEPS, help=f"generator steps (default: {DEMO_STEPS})")
    demo.add_argument("--count", type=int, default=200, help="images to export (default: 200)")
    demo.add_argument("--out", default="checkpoints", help="where the run folder goes (default: checkpoints)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def flag_reference() -> str:
    """docs/flags.md: every command's --help, at a fixed width, from the same dataclass fields."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps at the terminal's width
    try:
        parser = build_parser()
        [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        sections = [f"## gan {name}\n\n```text\n{command.format_help().rstrip()}\n```\n"
                    for name, command in commands.choices.items()]
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return ("# Flags\n\nEvery command's `--help`, written by `python scripts/flags.py` from the config dataclasses "
            "that make the flags (a test checks it is current).\n\n" + "\n".join(sections))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except GanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except OSError as error:  # full disk, permissions: the file and the reason, not a traceback
        where = f"{error.filename}: " if error.filename else ""
        fix = ": check its permissions, or choose another place" if is_refused(error) else ""
        print(f"error: {where}{error.strerror or error}{fix}", file=sys.stderr)
        return 1
    except (RuntimeError, MemoryError) as error:
        from gan.memory import is_out_of_memory  # (training explains its own, with what to lower)

        if not is_out_of_memory(error):
            raise
        detail = str(error).strip().splitlines()[:1]  # a MemoryError may come without a message
        print(f"error: out of memory{''.join(f' ({line})' for line in detail)}: lower --batch-size, or the number "
              f"or size of images asked for", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
