"""The typed configurations of the commands that work from a run or on image folders: gan sample, gan eval,
gan augment, gan value and gan grow (gan train's is gan.config's RunConfig). Each field declared with `option`
becomes a flag, as in gan.config."""

from __future__ import annotations

from dataclasses import dataclass

from gan.config import (MAX_SAMPLES, MAX_SEED, RESOLUTION, background_option, cache_dir_option, check_seed,
                        device_option, max_pixels_option, workers_option)
from gan.errors import GanError
from gan.options import FRACTION, POSITIVE, Duration, Range, check_declared, option

CLASSICAL_OPS = ("rotate", "crop", "blur", "scale", "translate", "flip", "brightness", "contrast")  # gan augment
# gan value's configurations: real images, + classical augmentation, + synthetic, + both, synthetic alone; each one
# with synthetic images is measured against the same without them.
VALUE_CONDITIONS = {"real": None, "classical": None, "synthetic": "real", "both": "classical", "only": "real"}


def parse_ops(ops: str) -> tuple[str, ...]:
    """--ops value -> classical operation names: 'rotate,blur' -> ('rotate', 'blur')."""
    names = tuple(name.strip() for name in ops.split(",") if name.strip())
    unknown = [name for name in names if name not in CLASSICAL_OPS]
    if unknown or not names:
        raise ValueError(f"unknown operation {', '.join(map(repr, unknown)) or '(none given)'}: choose from "
                         f"{', '.join(CLASSICAL_OPS)}")
    return names


# A million images of a few thousand real ones is far past any share that helps: beyond it a count is a typo that
# would fill the disk (or, planned up front, the memory) before saying so.
MAX_EXPORT = 1_000_000
EXPORT_COUNT = Range(1, MAX_EXPORT)


def check_variants_total(per_image: int, sources: int) -> int:
    """--per-image variants of `sources` images in all, refused past MAX_EXPORT; returns the total."""
    planned = per_image * sources
    if planned > MAX_EXPORT:
        raise GanError(f"--per-image {per_image} makes {planned:,} variants of {sources} images, more than the "
                       f"{MAX_EXPORT:,} one export makes: lower it")
    return planned


def overwrite_export_option():
    """gan sample's and gan augment's --overwrite: both keep a manifest of their own files."""
    return option(False, "write into a folder that already holds files: an earlier export's files there (those its "
                         "manifest lists) are removed first, every other file stays")


MIN_TRUNCATION = 0.05  # below this, redrawing until every coordinate fits would take very many draws


def truncation_option():
    """gan sample's and gan eval's --truncation: the same flag, so that what is exported can be measured."""
    return option(0.0, "redraw every noise coordinate larger than this in magnitude (the truncation trick: lower "
                  "trades variety for fidelity; BigGAN: 0.5 to 2; 0: off)", within=Range(MIN_TRUNCATION, zero="off"))


def validate_source(run: str, checkpoint: str) -> None:
    """--run DIR [--checkpoint best|last|FILE], or --checkpoint FILE alone."""
    if not run and checkpoint in ("", "best", "last"):
        raise GanError("give --run DIR (its best.pt, else its newest checkpoint) or --checkpoint FILE")


@dataclass
class SampleConfig:
    run: str = option("", "run folder to sample from: its best.pt when training evaluated it, else its newest checkpoint")
    checkpoint: str = option("", "best or last (of --run), or a checkpoint file")
    count: int = option(100, "how many images to export (a conditional model spreads them like the training classes)",
                        within=EXPORT_COUNT)
    per_class: int = option(0, "export this many images of every class (or of each --class) instead of --count",
                            within=Range(0, MAX_EXPORT, zero="use --count"))
    per_real: float = option(0.0, "export this many images per training image of each class (e.g. the share gan "
                             "value found best; at least 1 a class) instead of --count",
                             within=Range(0, MAX_EXPORT, low_open=True, zero="use --count"))
    classes: list[str] = option([], "export only this class (repeat the flag for several)", flag="--class")
    near: str = option("", "instead, draw variants of each real image in this folder (class folders of the run's "
                       "classes): its latent is found by inversion, the variants drawn near it, and each keeps its "
                       "source's class (the manifest names the source and how closely G drew it)")
    per_image: int = option(4, "variants of every --near image", within=EXPORT_COUNT)
    out: str = option("", "folder to write the images into (created if missing)")
    seed: int = option(0, "image i uses seed S+i, so the output does not depend on batch size or device")
    batch_size: int = option(64, "images generated per forward pass", within=POSITIVE)
    format: str = option("png", "image file format", ("png", "jpg"))
    grid: str = option("", "also write a preview grid of the first 64 images to this file")
    overwrite: bool = overwrite_export_option()
    device: str = device_option("generate")
    workers: int = workers_option("threads that encode and write images")
    truncation: float = truncation_option()
    reject_copies: bool = option(False, "skip samples that are near-copies of a training image (see gan eval --nearest), "
                                 "generating others in their place")
    label_filter: bool = option(True, "keep only samples that the run's judge (a classifier of its real images) "
                                "puts in the class they were made for, generating others in their place")
    min_confidence: float = option(0.5, "the judge's least probability of the intended class for a sample to be "
                                   "kept by --label-filter", within=FRACTION)

    def validate(self) -> None:
        check_declared(self)
        validate_source(self.run, self.checkpoint)
        if not self.out:
            raise GanError("--out is required: the folder to write the synthetic images into")
        check_seed(self.seed, MAX_SEED - self.count)
        # --count at its default yields to the others
        given = [flag for flag, on in (("--near", self.near), ("--per-real", self.per_real),
                                       ("--per-class", self.per_class),
                                       ("--count", self.count != SampleConfig().count)) if on]
        if len(given) > 1:
            raise GanError(f"{', '.join(given[:-1])} and {given[-1]} {'both' if len(given) == 2 else 'all'} say how "
                           f"many images to export: give one of them")


@dataclass
class EvalConfig:
    run: str = option("", "run folder to evaluate: its best.pt when training evaluated it, else its newest checkpoint")
    checkpoint: str = option("", "best or last (of --run), or a checkpoint file")
    real: str = option("", "real images to compare with, e.g. a held-out folder (default: the run's training images)")
    count: int = option(0, "images to generate (0: the run's --eval-count, as training measured)",
                        within=Range(2, MAX_SAMPLES, zero="the run's"))
    nearest: bool = option(False, "memorization report: each sample's nearest training image, the copy rate, and a grid "
                           "of the closest pairs")
    features: str = option("", "feature space: inception, random, auto or a TorchScript file (default: the run's)")
    inception_weights: str = option("", "Inception-v3 FID weights file (default: the run's)")
    seed: int = option(0, "image i uses seed S+i (training's evaluations use seed 0)")
    truncation: float = truncation_option()
    batch_size: int = option(64, "images per forward pass", within=POSITIVE)
    device: str = device_option("evaluate")

    def validate(self) -> None:
        check_declared(self)
        validate_source(self.run, self.checkpoint)
        check_seed(self.seed, MAX_SEED - max(self.count, 5000))


def check_ops(ops: str) -> None:
    try:
        parse_ops(ops)
    except ValueError as error:
        raise GanError(f"--ops: {error}") from None


STRENGTH = Range(0, 4, low_open=True)  # 1: the presets suited to photos


@dataclass
class VariantsConfig:
    data: str = option("", "folder of images to make variants of: flat, or one subfolder per class")
    out: str = option("", "folder to write the variants into, in the same layout (created if missing)")
    per_image: int = option(4, "variants of every image", within=EXPORT_COUNT)
    ops: str = option(",".join(CLASSICAL_OPS), "operations to draw from, comma-separated (drop flip for text or digits)")
    strength: float = option(1.0, "scales every operation's range (1: presets suited to photos)", within=STRENGTH)
    seed: int = option(0, "variant k of image i uses seed S + i * per_image + k")
    overwrite: bool = overwrite_export_option()
    background: str = background_option()
    max_pixels: int = max_pixels_option()
    workers: int = workers_option("threads that read, augment and write images")

    def validate(self) -> None:
        check_declared(self)
        if not self.data:
            raise GanError("--data is required: the folder of images to make variants of")
        if not self.out:
            raise GanError("--out is required: the folder to write the variants into")
        check_ops(self.ops)
        check_seed(self.seed)


@dataclass
class ValueConfig:
    train: str = option("", "labelled real training images: one subfolder per class")
    test: str = option("", "labelled real test images, never used for training (refused if they overlap)")
    out: str = option("", "folder for the report: value.json, report.md and accuracy.png")
    synthetic: str = option("", "synthetic images in class folders (e.g. from gan sample) to mix into training")
    classical: bool = option(False, "also train with classical augmentation on the fly, with and without synthetic")
    synthetic_ratio: str = option("0.1,0.25,0.5,1", "synthetic images mixed in per real one; several, comma-separated, "
                                  "are each measured on the same seeds, and the report names the share that helps "
                                  "most")
    seeds: int = option(3, "classifier trainings per configuration (seeds 0, 1, ...): accuracy is their mean ± std",
                        within=Range(1, 100))
    epochs: int = option(50, "training length, in passes over the real images (the same steps for every "
                         "configuration)", within=Range(1, 10_000))
    resolution: int = option(32, "image size the classifier sees, in pixels (a power of two from 16 to 4096)",
                             within=RESOLUTION)
    # Every step takes a full batch, across passes over the images: a batch is at most a few thousand of them.
    batch_size: int = option(64, "images per classifier step", within=Range(1, 4096))
    ops: str = option(",".join(CLASSICAL_OPS), "classical operations used with --classical")
    strength: float = option(1.0, "scales the classical operations' ranges", within=STRENGTH)
    conditions: str = option("", f"train only these configurations, comma-separated, from {', '.join(VALUE_CONDITIONS)}"
                             f" (both: real + classical + synthetic; only: synthetic alone), e.g. classical,both to "
                             f"measure synthetic images over classical augmentation alone (default: every one the "
                             f"flags allow)")
    device: str = device_option("train")
    cache_dir: str = cache_dir_option()
    overwrite: bool = option(False, "allow writing the report into a folder that already holds files")

    def validate(self) -> None:
        check_declared(self)
        for flag, value in (("--train", self.train), ("--test", self.test), ("--out", self.out)):
            if not value:
                raise GanError(f"{flag} is required (gan value --train DIR --test DIR --out DIR)")
        check_ops(self.ops)
        self.shares()
        self.chosen_conditions()

    def chosen_conditions(self) -> tuple[str, ...]:
        """The configurations to train, by their names in VALUE_CONDITIONS: --conditions, else every one the flags
        allow."""
        allowed = [name for name in VALUE_CONDITIONS
                   if (self.classical or name not in ("classical", "both"))
                   and (self.synthetic or name not in ("synthetic", "both", "only"))]
        if not self.conditions.strip():
            return tuple(allowed)
        chosen = tuple(dict.fromkeys(name.strip() for name in self.conditions.split(",")))
        for name in chosen:
            if name not in VALUE_CONDITIONS:
                raise GanError(f"--conditions: unknown configuration {name!r}: choose from "
                               f"{', '.join(VALUE_CONDITIONS)}")
            if name not in allowed:
                needs = "--classical" if name in ("classical", "both") and not self.classical else "--synthetic"
                raise GanError(f"--conditions {name} needs {needs}")
            against = VALUE_CONDITIONS[name]
            if against and against not in chosen:
                raise GanError(f"--conditions {name} is measured against {against}: add {against} to --conditions")
        return chosen

    def shares(self) -> tuple[float, ...]:
        """--synthetic-ratio as numbers, smallest first and each once: '1,0.25' -> (0.25, 1.0)."""
        text = str(self.synthetic_ratio)  # a number set from Python (e.g. benchmarks/value.py) is one share
        fix = "give synthetic images per real one, e.g. 0.5, or several comma-separated, e.g. 0.1,0.25,0.5,1"
        if not text.strip():
            raise GanError(f"--synthetic-ratio is empty: {fix}")
        within = Range(0, 100, low_open=True)  # NaN and inf fall outside too
        shares = set()
        for item in (item.strip() for item in text.split(",")):
            try:
                share = float(item)
            except ValueError:
                raise GanError(f"--synthetic-ratio: {item!r} is not a number: {fix}") from None
            if not within.admits(share):
                raise GanError(f"--synthetic-ratio must be {within}, got {item}: {fix}")
            shares.add(share)
        return tuple(sorted(shares))


@dataclass
class GrowConfig:
    data: str = option("", "your labelled images: one subfolder per class")
    out: str = option("", "folder for the whole journey: the split, the run, the measurements, report.md and the "
                      "images handed over (created; a journey stopped there carries on)")
    test: str = option("", "your own labelled test images, never trained on (default: hold out --held-out of "
                       "--data, per class)")
    held_out: float = option(0.2, "share of each class of --data held out to measure on (without --test)",
                             within=Range(0.05, 0.5))
    budget: str = option("30m", "the most time the GAN trains (it stops sooner when its scores stop improving)",
                         within=Duration())
    steps: int = option(20_000, "the most GAN training steps", within=Range(100, 10_000_000))
    resolution: int = option(32, "image size of the GAN and of the classifier that measures it (a power of two "
                             "from 16 to 4096)", within=RESOLUTION)
    conditional: str = option("on", "one class-conditional GAN (on), or one GAN per class, whose labels hold by "
                              "construction (per-class)", ("on", "per-class"))
    synthetic_ratio: str = option("0.1,0.25,0.5,1", "the shares of synthetic images per real one to measure")
    seeds: int = option(3, "classifier trainings per configuration: the gains are paired by seed",
                        within=Range(2, 100))
    epochs: int = option(50, "classifier training length, in passes over the real images", within=Range(1, 10_000))
    ops: str = option(",".join(CLASSICAL_OPS), "the classical augmentation measured and handed over, comma-separated "
                      "(drop flip for text or digits)")
    seed: int = option(0, "seed of the split and of the GAN")
    device: str = device_option("train")

    def validate(self) -> None:
        check_declared(self)
        for flag, value in (("--data", self.data), ("--out", self.out)):
            if not value:
                raise GanError(f"{flag} is required (gan grow --data DIR --out DIR)")
        ValueConfig(train=self.data, test=self.data, out=self.out, synthetic_ratio=self.synthetic_ratio).shares()
        check_ops(self.ops)
        check_seed(self.seed)
