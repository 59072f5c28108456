"""`gan grow`: the whole journey in one command. It holds out real images to measure on, measures real images and
classical augmentation, trains the GAN within a time budget, exports synthetic images two ways (drawn per class
through the label and copy filters, and drawn near each real training image), measures each share of each over
paired seeds, and hands over the folder that helped most, with report.md.

Each stage's record goes into OUT/journey.json when the stage ends, so a journey stopped anywhere (Ctrl-C, kill -9)
carries on from its first unfinished stage when the same command runs again.
"""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from gan.command_config import GrowConfig, SampleConfig, ValueConfig, VariantsConfig
from gan.config import RunConfig
from gan.errors import GanError
from gan.files import FolderLock, write_text
from gan.folders import check_folder, scan_folder
from gan.manifest import MANIFEST
from gan.options import seconds, to_dict
from gan.value_report import BOTH, CLASSICAL, REAL, at

JOURNEY = "journey.json"
MIN_GAIN = 1.0  # points over the best training set without them, on average and above 0 in every seed: "it helped"
VARIANTS_PER_IMAGE = 4  # classical variants handed over when synthetic images did not help
# The GAN's schedule: evaluated often enough for --patience to stop it near its best within the budget.
EVAL_EVERY, PATIENCE = 500, 4
# The two ways of making synthetic images, by the stage that exports them: each is measured, and the journey hands
# over the one that helped more.
MODES = {"sampled": "drawn per class, through the label and copy filters",
         "anchored": "drawn near each real training image, whose class they keep"}


@dataclass
class GrowResult:
    out: Path
    helped: bool
    verdict: str
    images: Path  # the folder to train on
    report: Path


def grow(cfg: GrowConfig, log: Callable[[str], None] = print) -> GrowResult:
    cfg.validate()
    root = check_folder(cfg.data)
    if cfg.test:
        check_folder(cfg.test, "--test")
    out = _claim(cfg)
    lock = FolderLock(out, "grown", "two journeys would redo each other's stages. Wait for it to finish, or choose "
                      "another --out", pid_file=False)
    try:
        return _Journey(cfg, root, out, log).run()
    finally:
        lock.release()


def _settings(cfg: GrowConfig) -> dict:
    """What a journey's results depend on (the budget may change between tries)."""
    return {key: value for key, value in to_dict(cfg).items() if key not in ("budget", "device")}


def _claim(cfg: GrowConfig) -> Path:
    """OUT, new or empty, or holding a journey of these settings to carry on; never a folder of the user's."""
    out = Path(cfg.out).expanduser()
    if (out / JOURNEY).is_file():
        saved = _journey_file(out)["settings"]
        changed = [f"--{key.replace('_', '-')} {saved.get(key)!r} -> {value!r}"
                   for key, value in _settings(cfg).items() if saved.get(key) != value]
        if changed:
            raise GanError(f"--out {out} holds a journey with other settings ({'; '.join(changed)}): give the same "
                           f"flags to carry it on, or choose another --out")
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GanError(f"--out {out} already holds files: choose a new or empty folder (gan grow carries on only a "
                       f"journey it started there)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _journey_file(out: Path) -> dict:
    try:
        journey = json.loads((out / JOURNEY).read_text())
        return {"settings": dict(journey["settings"]), "stages": dict(journey["stages"])}
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise GanError(f"cannot read {out / JOURNEY} ({error}): it was not written by gan grow, or was edited; choose "
                       f"another --out") from None


def gan_config(cfg: GrowConfig, train_dir: str, runs: Path) -> RunConfig:
    """The GAN a journey trains: the defaults that the labels-on-real-data work chose, within --budget."""
    run = RunConfig()
    run.data.path, run.data.resolution = train_dir, cfg.resolution
    run.model.conditional = cfg.conditional
    t = run.train
    t.out, t.name, t.steps, t.seed, t.device, t.time_limit = str(runs), "grow", cfg.steps, cfg.seed, cfg.device, cfg.budget
    t.eval_every = t.checkpoint_every = t.image_every = EVAL_EVERY
    t.patience = PATIENCE
    return run


class _Journey:
    def __init__(self, cfg: GrowConfig, root: Path, out: Path, log: Callable[[str], None]):
        self.cfg, self.root, self.out, self.log = cfg, root, out, log
        self.stages: dict[str, dict] = _journey_file(out)["stages"] if (out / JOURNEY).is_file() else {}

    def run(self) -> GrowResult:
        steps = [("split", "hold out real images to measure on", self.split),
                 ("baseline", "measure real images and classical augmentation", self.baseline),
                 ("train", f"train the GAN (at most {self.cfg.budget})", self.train),
                 ("sampled", f"export synthetic images {MODES['sampled']}", self.sampled),
                 ("anchored", f"export synthetic images {MODES['anchored']}", self.anchored)]
        steps += [(f"measure {mode}", f"measure each share of the {mode} images", partial(self.measure, mode))
                  for mode in MODES]
        steps.append(("hand over", "hand over the images that helped most", self.hand_over))
        started = time.monotonic()
        for number, (name, what, stage) in enumerate(steps, 1):
            head = f"[{number}/{len(steps)}] {name}"
            if name in self.stages:
                self.log(f"{head}: done in an earlier try ({self.stages[name]['seconds']:.0f} s), kept")
                continue
            self.log(f"{head}: {what} ({(time.monotonic() - started) / 60:.1f} min so far{self._left(name)})")
            began = time.monotonic()
            record = stage()
            self.stages[name] = {**record, "seconds": time.monotonic() - began}
            write_text(self.out / JOURNEY, json.dumps({"settings": _settings(self.cfg), "stages": self.stages},
                                                      indent=2) + "\n")
        report = self.write_report()
        last = self.stages["hand over"]
        return GrowResult(self.out, last["helped"], last["verdict"], Path(last["images"]), report)

    def _left(self, stage: str) -> str:
        """'; N min left at most': each measure stage still to come trains 1 + 1 per share configurations, at the
        baseline's pace for its 2; before training, the budget too."""
        if "baseline" not in self.stages or stage == "hand over":
            return ""
        measures = sum(f"measure {mode}" not in self.stages for mode in MODES)
        left = self.stages["baseline"]["seconds"] / 2 * measures * (1 + len(self._shares()))
        if stage == "train":
            left += seconds(self.cfg.budget)
        return f"; {left / 60:.0f} min left at most"

    # --- the stages: each returns its record, with the command that repeats it by hand -----------------------

    def split(self) -> dict:
        cfg = self.cfg
        if cfg.test:
            return {"train": str(self.root), "test": str(Path(cfg.test).expanduser()),
                    "command": "(your --test folder: nothing was split)"}
        files, labels, names = scan_folder(self.root, self.log)
        if len(names) < 2:
            raise GanError(f"--data {self.root} has no class folders, or one: gan grow measures the images' worth with "
                           f"a classifier, which needs two classes or more (for unlabelled images: gan train, gan sample)")
        folder, partial = self.out / "split", self.out / ".split.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shuffle = random.Random(cfg.seed)
        rows = []
        for c, name in enumerate(names):
            mine = [f for f, label in zip(files, labels) if label == c]
            if len(mine) < 2:
                raise GanError(f"class {name} has 1 image: gan grow holds out at least one image of each class and "
                               f"trains on another; add images of {name}, or give your own --test")
            shuffle.shuffle(mine)
            held = min(len(mine) - 1, max(1, round(cfg.held_out * len(mine))))
            for i, file in enumerate(mine):
                part, relative = "test" if i < held else "train", file.relative_to(self.root)
                (partial / part / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, partial / part / relative)
                rows.append([relative.as_posix(), name, part])
        with open(partial / "split.csv", "w", newline="") as listing:
            csv.writer(listing).writerows([["file", "class", "part"], *rows])
        shutil.rmtree(folder, ignore_errors=True)  # a try killed between this rename and its record
        partial.rename(folder)
        held = sum(row[2] == "test" for row in rows)
        return {"train": str(folder / "train"), "test": str(folder / "test"), "held_out": held,
                "command": f"(gan grow held out {held} of {len(rows)} images, {cfg.held_out:g} of each class, from "
                           f"seed {cfg.seed}: {folder / 'split.csv'} lists them)"}

    def _value(self, folder: str, synthetic: str = "") -> tuple[dict, str]:
        """gan value on the split: real images and classical augmentation, or (with `synthetic`) classical
        augmentation with and without each share of those images."""
        cfg, split = self.cfg, self.stages["split"]
        conditions = "classical,both" if synthetic else "real,classical"
        value = ValueConfig(train=split["train"], test=split["test"], out=str(self.out / folder), synthetic=synthetic,
                            classical=True, synthetic_ratio=cfg.synthetic_ratio, seeds=cfg.seeds, epochs=cfg.epochs,
                            resolution=cfg.resolution, ops=cfg.ops, conditions=conditions, device=cfg.device,
                            overwrite=True)
        from gan.value import measure_value

        report = measure_value(value, log=self.log).report
        mixed = f" --synthetic {synthetic} --synthetic-ratio {cfg.synthetic_ratio}" if synthetic else ""
        return report, (f"gan value --train {split['train']} --test {split['test']} --classical --ops {cfg.ops}{mixed} "
                        f"--conditions {conditions} --seeds {cfg.seeds} --epochs {cfg.epochs} --resolution "
                        f"{cfg.resolution} --out {self.out / folder}")

    def baseline(self) -> dict:
        report, command = self._value("baseline")
        return {"real": report["conditions"][REAL]["accuracy"],
                "classical": report["conditions"][CLASSICAL]["accuracy"], "command": command}

    def train(self) -> dict:
        from gan.checkpoint import list_checkpoints, load_checkpoint, newest_run
        from gan.train import out_of_patience, train

        run_cfg = gan_config(self.cfg, self.stages["split"]["train"], self.out / "runs")
        t = run_cfg.train
        command = (f"gan train --data {run_cfg.data.path} --out {t.out} --name {t.name} --resolution "
                   f"{run_cfg.data.resolution} --conditional {run_cfg.model.conditional} --steps {t.steps} "
                   f"--eval-every {t.eval_every} --checkpoint-every {t.checkpoint_every} --patience {t.patience} "
                   f"--time-limit {t.time_limit} --seed {t.seed}")
        existing = newest_run(t.out, t.name)
        resume = load_checkpoint(str(existing)) if existing and list_checkpoints(existing) else None
        if resume:  # a try killed while training: on from its last checkpoint, with the budget given now
            run_cfg = resume.saved_config()
            run_cfg.train.time_limit, run_cfg.train.device = self.cfg.budget, self.cfg.device
            if resume.step >= t.steps or out_of_patience(resume, run_cfg):
                return {"run": str(existing), "step": resume.step, "command": command}
        result = train(run_cfg, resume=resume, log=self.log)
        if result.interrupted:
            raise GanError(f"the journey stopped while training, at step {result.step}: run the same gan grow command "
                           f"to carry on from there")
        return {"run": str(result.run_dir), "step": result.step, "command": command}

    def sampled(self) -> dict:
        run, share = self.stages["train"]["run"], max(self._shares())
        return self._export("sampled", SampleConfig(run=run, per_real=share, reject_copies=True),
                            f"gan sample --run {run} --per-real {share:g} --reject-copies")

    def anchored(self) -> dict:
        run, train = self.stages["train"]["run"], self.stages["split"]["train"]
        per_image = math.ceil(max(self._shares()))
        return self._export("anchored", SampleConfig(run=run, near=train, per_image=per_image),
                            f"gan sample --run {run} --near {train} --per-image {per_image}")

    def _export(self, mode: str, cfg: SampleConfig, command: str) -> dict:
        from gan.sample import export

        cfg.out, cfg.overwrite, cfg.seed, cfg.device = str(self.out / mode), True, self.cfg.seed, self.cfg.device
        result = export(cfg, log=self.log)
        return {"folder": cfg.out, "images": len(result.files), "asked": result.planned,
                "command": f"{command} --seed {self.cfg.seed} --out {cfg.out}"}

    def _shares(self) -> tuple[float, ...]:
        return ValueConfig(synthetic_ratio=self.cfg.synthetic_ratio).shares()

    def measure(self, mode: str) -> dict:
        exported = self.stages[mode]
        if not exported["images"]:
            return {"share": None, "grown": [], "gains": [], "command": "(nothing to measure)",
                    "verdict": "the GAN made no image that its judge puts in the class it was made for"}
        report, command = self._value(f"value/{mode}", exported["folder"])
        shares = self._shares()
        share = report["share_sweep"]["best"] if report["share_sweep"] else shares[0]
        results = report["conditions"]
        grown = results[at(BOTH, share if len(shares) > 1 else None)]["accuracy"]
        return {"share": share, "grown": grown, "gains": _gains(grown, results[CLASSICAL]["accuracy"]),
                "verdict": report["verdict"], "command": command}

    def _best_mode(self) -> str:
        """The mode whose best share gained most over classical augmentation (the first, when none was measured)."""
        measured = [mode for mode in MODES if self.stages[f"measure {mode}"]["gains"]]
        return max(measured, key=lambda mode: _mean(self.stages[f"measure {mode}"]["gains"]), default=next(iter(MODES)))

    def hand_over(self) -> dict:
        mode, baseline = self._best_mode(), self.stages["baseline"]
        measured = self.stages[f"measure {mode}"]
        share, (bar, bar_accuracy) = measured["share"], _the_bar(baseline)
        gains = _gains(measured["grown"], bar_accuracy)
        classical_gains = _gains(baseline["classical"], baseline["real"])
        helped = bool(gains) and _mean(gains) >= MIN_GAIN and min(gains) > 0
        seeds = f"{len(classical_gains)} seeds, paired"
        why = (f"{_mean(gains):+.1f} points over {bar} with the better of the two kinds, {mode} images at {share:g} "
               f"per real image, {seeds}" if gains else measured["verdict"])
        if helped:
            images = self._real_and_synthetic(mode, share)
            verdict = (f"Synthetic images helped: adding {share:g} per real image, {MODES[mode]}, raised held-out "
                       f"accuracy by {_mean(gains):.1f} points over {bar} ({100 * _mean(measured['grown']):.1f}% "
                       f"against {100 * _mean(bar_accuracy):.1f}%, {seeds}). Train on {images}/ with classical "
                       f"augmentation, as measured")
            command = f"(the real images of {self.root} and the {mode} share above, copied)"
        elif _mean(classical_gains) > 0:
            images = self._real_and_variants()
            verdict = (f"Synthetic images did not help your data ({why}); use classical augmentation ({images}/), "
                       f"which gave {_mean(classical_gains):+.1f} points over real images alone")
            command = (f"gan augment --data {self.root} --per-image {VARIANTS_PER_IMAGE} --ops {self.cfg.ops} "
                       f"--seed {self.cfg.seed} --out {images}")
        else:
            images = self.root
            verdict = (f"Synthetic images did not help your data ({why}), and neither did classical augmentation "
                       f"({_mean(classical_gains):+.1f} points): train on your real images as they are")
            command = "(nothing to hand over: your own folder is the best training set measured)"
        return {"helped": helped, "mode": mode, "over": bar, "gains": gains, "images": str(images), "verdict": verdict,
                "command": command}

    # --- what is handed over ---------------------------------------------------------------------------------

    def _real_and_synthetic(self, mode: str, share: float) -> Path:
        """OUT/images: every real image of --data, and `share` synthetic ones of `mode` per real training image of each
        class (as measured), in class folders."""
        folder, partial = self.out / "images", self.out / ".images.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(self.root, partial, ignore=shutil.ignore_patterns(".*"))
        train_counts = _class_counts(Path(self.stages["split"]["train"]))
        synthetic = Path(self.stages[mode]["folder"])
        with open(synthetic / MANIFEST, newline="") as manifest:
            rows = list(csv.DictReader(manifest))
        taken: dict[str, int] = {}
        for row in rows:  # the first of each class: what gan sample would export for that share
            name = row["class"]
            if taken.get(name, 0) < round(share * train_counts.get(name, 0)):
                taken[name] = taken.get(name, 0) + 1
                source = synthetic / row["file"]
                shutil.copy2(source, partial / name / f"gan-{source.name}")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        return folder

    def _real_and_variants(self) -> Path:
        """OUT/classical: every real image of --data and VARIANTS_PER_IMAGE classical variants of each."""
        from gan.variants import export_variants

        folder = self.out / "classical"
        export_variants(VariantsConfig(data=str(self.root), out=str(folder), per_image=VARIANTS_PER_IMAGE,
                                       ops=self.cfg.ops, seed=self.cfg.seed, overwrite=True), log=self.log)
        for file in scan_folder(self.root, lambda _: None)[0]:
            target = folder / file.relative_to(self.root)
            if not target.exists():
                shutil.copy2(file, target)
        return folder

    # --- the report --------------------------------------------------------------------------------------------

    def write_report(self) -> Path:
        last, baseline = self.stages["hand over"], self.stages["baseline"]
        rows = [("real images", baseline["real"]), ("real + classical augmentation", baseline["classical"])]
        rows += [(f"real + classical + {mode} x{record['share']:g}", record["grown"])
                 for mode, record in ((mode, self.stages[f"measure {mode}"]) for mode in MODES) if record["gains"]]
        lines = [f"# {last['verdict']}", "", "Held-out accuracy of the same small classifier, mean ± std over seeds "
                 "(each synthetic row at its best share):", "", "| trained on | held-out accuracy |", "|---|---|"]
        lines += [f"| {name} | {100 * _mean(values):.1f} ± {100 * _std(values):.1f}% |" for name, values in rows]
        if last["gains"]:
            lines += ["", f"![accuracy of every configuration, {last['mode']} images](value/{last['mode']}/accuracy.png)",
                      "", f"Gain of the {last['mode']} share over {last['over']}, per seed: "
                      f"{', '.join(f'{g:+.1f}' for g in last['gains'])} points (every share: "
                      f"value/{last['mode']}/report.md). The kind and the share were chosen on the same held-out images "
                      f"they are reported on, so the gain is an optimistic estimate: confirm it on images that took no "
                      f"part (gan value --test)."]
        lines += ["", "## The stages, and the command that repeats each", "", "| stage | time | command |",
                  "|---|---|---|"]
        lines += [f"| {name} | {record['seconds'] / 60:.1f} min | `{record['command']}` |"
                  for name, record in self.stages.items()]
        path = self.out / "report.md"
        write_text(path, "\n".join(lines) + "\n")
        return path


def _the_bar(baseline: dict) -> tuple[str, list[float]]:
    """What synthetic images must beat, with its accuracy per seed: the better of real images alone and real images
    with classical augmentation (the former on a tie, as the hand-over has it), since a user without synthetic images
    trains on whichever is better, and classical augmentation does hurt some data."""
    options = (("real images alone", baseline["real"]),
               ("real images with classical augmentation", baseline["classical"]))
    return max(options, key=lambda option: _mean(option[1]))


def _gains(accuracy: list[float], over: list[float]) -> list[float]:
    """Per-seed gains in points (the seeds are paired)."""
    return [100 * (a - b) for a, b in zip(accuracy, over)]


def _class_counts(folder: Path) -> dict[str, int]:
    files, labels, names = scan_folder(folder, lambda _: None)
    return {name: labels.count(c) for c, name in enumerate(names)}


def _mean(values: list[float]) -> float:
    # Accuracies are ratios of counts, so equal means must compare equal (a tie must not hand over classical
    # augmentation, nor print as -0.0): the float noise of summing them is rounded off.
    return round(sum(values) / len(values), 9) + 0.0


def _std(values: list[float]) -> float:
    mean = _mean(values)
    return (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5
