"""Typed configuration: one dataclass per concern, validated with messages that name the flag, JSON round-trip.

Every field with `help` metadata becomes a command-line flag (see `gan.cli`), so a knob is written once, here.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

from PIL import ImageColor

from gan.errors import GanError

AUGMENTATIONS = ("translation", "cutout", "color", "flip")
DEFAULT_POLICY = "translation,cutout,color"  # flip only where the data allows it (not for text, digits ...)
SMALL_DATA = 30_000  # below this many images, discriminators memorise: augment and regularise by default
CLASSICAL_OPS = ("rotate", "crop", "blur", "scale", "translate", "flip", "brightness", "contrast")  # gan augment
MAX_SEED = 2**60  # torch generators take 64-bit seeds; training derives a few streams from one seed


def reject_non_finite(cfg) -> None:
    """Every float setting must be a number: NaN and inf pass every range check written as a comparison."""
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if dataclasses.is_dataclass(value):
            reject_non_finite(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise GanError(f"{field.metadata.get('flag') or flag_name(field.name)} must be a finite number, got {value}")


def flag_name(name: str) -> str:
    """The command-line flag of a config field: z_dim -> --z-dim."""
    return "--" + name.replace("_", "-")


def parse_policy(policy: str) -> tuple[str, ...]:
    """--augment value -> operation names: 'translation,cutout' -> ('translation', 'cutout'); 'none' -> ()."""
    if policy in ("", "none"):
        return ()
    names = tuple(name.strip() for name in policy.split(","))
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"unknown augmentation {', '.join(map(repr, unknown))}: choose from {', '.join(AUGMENTATIONS)}, or none"
        )
    return names


def parse_ops(ops: str) -> tuple[str, ...]:
    """--ops value -> classical operation names: 'rotate,blur' -> ('rotate', 'blur')."""
    names = tuple(name.strip() for name in ops.split(",") if name.strip())
    unknown = [name for name in names if name not in CLASSICAL_OPS]
    if unknown or not names:
        raise ValueError(f"unknown operation {', '.join(map(repr, unknown)) or '(none given)'}: choose from "
                         f"{', '.join(CLASSICAL_OPS)}")
    return names


def check_seed(seed: int, last: int = MAX_SEED - 1) -> None:
    if not 0 <= seed <= last:
        raise GanError(f"--seed must be between 0 and {last}, got {seed}")


def check_workers(workers: int) -> None:
    if workers < 0:
        raise GanError(f"--workers must be 0 (auto) or more, got {workers}")


def option(default, help: str, choices: tuple | None = None, flag: str | None = None):
    """A config field that is also a command-line flag (`--field-name` unless `flag` says otherwise).

    A list default makes a repeatable flag (`--class a --class b`)."""
    metadata = {"help": help, "choices": choices, "flag": flag}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def derived(default_factory):
    """A config field filled in by the program (e.g. from the data), saved in config.json but not a flag."""
    return field(default_factory=default_factory)


def overwrite_export_option():
    """gan sample's and gan augment's --overwrite: both keep a manifest of their own files."""
    return option(False, "write into a folder that already holds files: an earlier export's files there (those its "
                         "manifest lists) are removed first, every other file stays")


def cache_dir_option():
    """--cache-dir, for every command that decodes image folders."""
    return option("", "where the decoded-image cache lives (default: $XDG_CACHE_HOME/gan or ~/.cache/gan)")


@dataclass
class DataConfig:
    path: str = option("", "folder of images: flat, or one subfolder per class", flag="--data")
    resolution: int = option(64, "training resolution in pixels (a power of two, 16 or more)")
    channels: int = option(0, "1 (grayscale) or 3 (colour); 0 picks 1 when every image is grayscale", (0, 1, 3))
    mirror: bool = option(False, "also train on horizontally flipped images")
    class_balance: bool = option(False, "sample every class equally often, however many images it has")
    background: str = option("white", "colour transparent images are composited onto (name or #rrggbb)")
    max_pixels: int = option(80_000_000, "skip images with more pixels than this (guards against decompression bombs)")
    workers: int = option(0, "processes that decode images (0: one per CPU core)")
    cache: bool = option(True, "cache decoded images so the next run on the same folder starts at once")
    cache_dir: str = cache_dir_option()
    ram_limit_gb: float = option(1.0, "decoded images larger than this (GiB) are memory-mapped from the cache file "
                                 "instead of loaded into RAM")
    class_names: list[str] = derived(list)
    class_counts: list[int] = derived(list)
    num_images: int = derived(int)

    def validate(self) -> None:
        r = self.resolution
        if r < 16 or r & (r - 1):
            raise GanError(f"--resolution must be a power of two of at least 16 (16, 32, 64, 128 ...), got {r}")
        if self.channels not in (0, 1, 3):
            raise GanError(f"--channels must be 1, 3 or 0 (auto), got {self.channels}")
        if self.max_pixels < 1:
            raise GanError(f"--max-pixels must be positive, got {self.max_pixels}")
        check_workers(self.workers)
        if self.ram_limit_gb < 0:
            raise GanError(f"--ram-limit-gb must be 0 (always memory-map) or more, got {self.ram_limit_gb}")
        try:
            ImageColor.getrgb(self.background)
        except ValueError:
            raise GanError(f"--background {self.background!r} is not a colour: use a name like white or #rrggbb") from None


@dataclass
class ModelConfig:
    z_dim: int = option(100, "length of the generator's noise vector")
    g_channels: int = option(64, "generator width: channels of its last hidden layer (doubling towards 4x4, at most 8x)")
    d_channels: int = option(64, "discriminator width: channels of its first layer (doubling, at most 8x)")
    conditional: str = option("auto", "class-conditional G and D; auto: on when the data has 2+ class folders",
                              ("auto", "on", "off"))
    g_conditioning: str = option("concat", "how a conditional G takes the class: concat (an embedding joined to the "
                                 "noise) or cbn (conditional BatchNorm in every block)", ("concat", "cbn"))
    spectral_norm: str = option("auto", "spectral normalisation instead of BatchNorm in D; auto: on below "
                                "30k images", ("auto", "on", "off"))

    def validate(self) -> None:
        for name in ("z_dim", "g_channels", "d_channels"):
            if getattr(self, name) < 1:
                raise GanError(f"{flag_name(name)} must be positive, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    steps: int = option(5000, "total generator steps for the run (on --resume: the step to carry the run on to)")
    batch_size: int = option(64, "images per step for the discriminator and the generator")
    g_lr: float = option(2e-4, "generator Adam learning rate")
    d_lr: float = option(2e-4, "discriminator Adam learning rate")
    beta1: float = option(0.5, "Adam beta1 for both networks")
    beta2: float = option(0.999, "Adam beta2 for both networks")
    ema_decay: float = option(0.999, "decay of the generator's moving average used for grids and export (0: off)")
    loss: str = option("nonsaturating", "adversarial loss: rpgan pairs every real image with a fake and asks D to "
                       "score the real one higher (R3GAN)", ("nonsaturating", "hinge", "rpgan"))
    class_weight: float = option(0.0, "weight of the class term of a conditional run: cross-entropy of D's class "
                                 "scores on real images (for D) and on fakes (for G), as in AC-GAN (0: off)")
    r1_gamma: float = option(0.0, "weight of the R1 gradient penalty on real images (0: off)")
    r2_gamma: float = option(0.0, "weight of the R2 gradient penalty on generated images (0: off); R3GAN uses R1 and "
                             "R2 with the same weight")
    r1_every: int = option(16, "apply R1 and R2 every this many steps, scaled up to match (lazy regularisation)")
    gamma_final: float = option(1.0, "R1 and R2 weights at the last step, as a fraction of --r1-gamma and "
                                "--r2-gamma, reached along a cosine (1: constant; R3GAN decays them to 0.1)")
    gamma_decay_steps: int = option(0, "steps over which R1 and R2 fall to --gamma-final, then stay there (0: the "
                                    "run's --steps when it starts; a resume keeps the value, so it repeats exactly)")
    lecam_weight: float = option(0.0, "weight of LeCam regularisation, which pulls D's logits towards the moving "
                                 "averages of its outputs (limited-data GANs; 0: off)")
    init_from: str = option("", "start a new run from the networks of this run folder or checkpoint (transfer "
                            "from a related, larger dataset); class parameters start afresh when the classes differ")
    freeze_d: int = option(0, "keep the first N blocks of D as they were (Freeze-D: for fine-tuning with --init-from)")
    augment: str = option("auto", "augmentations the discriminator sees, comma-separated from translation, cutout, "
                          "color, flip; none: off; auto: translation,cutout,color below 30k images")
    augment_p: str = option("auto", "probability of each augmentation: a number in [0, 1], or auto to adapt it "
                            "to the discriminator's overfitting")
    augment_target: float = option(0.6, "the overfitting signal E[sign(D(real))] that auto p aims for")
    seed: int = option(0, "random seed: the same seed, data and settings repeat a CPU run exactly")
    device: str = option("auto", "where to train: auto picks cuda, then mps, then cpu", ("auto", "cuda", "mps", "cpu"))
    precision: str = option("auto", "auto: bf16 autocast where the GPU or CPU computes bf16 natively, else fp32", ("auto", "fp32", "bf16"))
    compile: bool = option(False, "torch.compile both networks (CUDA; slower start, faster steps)")
    compile_mode: str = option("default", "what --compile optimises for: reduce-overhead also replays each network's "
                               "steps as CUDA graphs, so that a fast GPU does not wait on kernel launches (CUDA only)",
                               ("default", "reduce-overhead", "max-autotune"))
    log_every: int = option(20, "steps between reading losses into TensorBoard, stats.jsonl and the progress bar")
    image_every: int = option(500, "steps between sample grids (fakes-<step>.png and TensorBoard)")
    checkpoint_every: int = option(1000, "steps between checkpoints (one is always written at the end)")
    keep: int = option(3, "how many of the newest checkpoints to keep")
    eval_every: int = option(1000, "steps between evaluations (KID, FID, precision/recall, label agreement in "
                             "TensorBoard); the best by --best-by is kept as best.pt (0: off)")
    best_by: str = option("auto", "what best.pt is chosen by: kid, or class_kid (the mean per-class KID, where a "
                          "sample in the wrong class costs); auto: class_kid for a conditional run",
                          ("auto", "kid", "class_kid"))
    eval_count: int = option(0, "images generated per evaluation (0: as many as the real images, 500 to 5000)")
    out: str = option("checkpoints", "folder where numbered run folders are created")
    name: str = option("", "run folder name after its number (default: the data folder's name)")
    tensorboard: bool = option(True, "write TensorBoard events (stats.jsonl is written either way)")

    def validate(self) -> None:
        positive = ("steps", "batch_size", "g_lr", "d_lr", "log_every", "image_every", "checkpoint_every", "keep",
                    "r1_every")
        for name in ("freeze_d", "gamma_decay_steps"):
            if getattr(self, name) < 0:
                raise GanError(f"{flag_name(name)} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.gamma_final <= 1:
            raise GanError(f"--gamma-final must be in [0, 1], got {self.gamma_final}")
        if self.eval_every < 0:
            raise GanError(f"--eval-every must be 0 (off) or more, got {self.eval_every}")
        if self.eval_count < 0 or self.eval_count == 1:
            raise GanError(f"--eval-count must be 0 (auto) or 2 or more, got {self.eval_count}")
        for name in positive:
            if getattr(self, name) <= 0:
                raise GanError(f"{flag_name(name)} must be positive, got {getattr(self, name)}")
        check_seed(self.seed)
        if self.compile_mode != "default" and not self.compile:
            raise GanError(f"--compile-mode {self.compile_mode} takes effect with --compile: add --compile, or pass "
                           f"--compile-mode default")
        for name in ("beta1", "beta2", "ema_decay", "augment_target"):
            if not 0 <= getattr(self, name) < 1:
                raise GanError(f"{flag_name(name)} must be in [0, 1), got {getattr(self, name)}")
        for name in ("r1_gamma", "r2_gamma", "lecam_weight", "class_weight"):
            if getattr(self, name) < 0:
                raise GanError(f"{flag_name(name)} must be 0 (off) or positive, got {getattr(self, name)}")
        if not self.augment.strip():
            raise GanError("--augment is empty: name operations (translation,cutout,color,flip), or none, or auto")
        if self.augment != "auto":
            try:
                parse_policy(self.augment)
            except ValueError as error:
                raise GanError(f"--augment: {error}") from None
        if self.augment_p != "auto":
            try:
                p = float(self.augment_p)
            except ValueError:
                p = -1.0
            if not 0 <= p <= 1:
                raise GanError(f"--augment-p must be auto or a number in [0, 1], got {self.augment_p!r}")


@dataclass
class FeatureConfig:
    """The feature space the metrics are computed in (see gan.features)."""

    features: str = option("auto", "feature space for the metrics: inception (standard FID), random (a fixed random "
                           "CNN, no download), a TorchScript file, or auto: inception if its weights are on disk")
    inception_weights: str = option("", "Inception-v3 FID weights file (default: looked for in the torch hub cache)")

    def validate(self) -> None:
        if not self.features:
            raise GanError("--features must be auto, inception, random or a TorchScript file")


@dataclass
class RunConfig:
    """Everything a training run needs; saved as config.json in the run folder and inside every checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: FeatureConfig = field(default_factory=FeatureConfig)

    def validate(self) -> None:
        reject_non_finite(self)
        self.data.validate()
        self.model.validate()
        self.train.validate()
        self.metrics.validate()

    @property
    def num_classes(self) -> int:
        """Classes the networks are conditioned on (0: unconditional)."""
        return len(self.data.class_names) if self.model.conditional == "on" else 0

    def resolve_auto(self, num_images: int, num_classes: int) -> None:
        """Turn each 'auto' into what suits this data: small data gets augmentation and spectral normalisation,
        class folders get a conditional model."""
        small = num_images < SMALL_DATA
        if self.model.conditional == "auto":
            self.model.conditional = "on" if num_classes >= 2 else "off"
        if self.model.spectral_norm == "auto":
            self.model.spectral_norm = "on" if small else "off"
        if not self.train.gamma_decay_steps:
            self.train.gamma_decay_steps = self.train.steps
        if self.train.augment == "auto":
            self.train.augment = DEFAULT_POLICY if small else "none"
        if self.train.best_by == "auto" or self.model.conditional == "off":  # no classes, no per-class KID
            self.train.best_by = "class_kid" if self.model.conditional == "on" else "kid"


MIN_TRUNCATION = 0.05  # below this, redrawing until every coordinate fits would take very many draws


def check_truncation(truncation: float) -> None:
    if not (truncation == 0 or truncation >= MIN_TRUNCATION):
        raise GanError(f"--truncation must be 0 (off) or a number of at least {MIN_TRUNCATION} (BigGAN: 0.5 to 2), "
                       f"got {truncation}")


def truncation_option():
    """gan sample's and gan eval's --truncation: the same flag, so that what is exported can be measured."""
    return option(0.0, "redraw every noise coordinate larger than this in magnitude (the truncation trick: lower "
                  "trades variety for fidelity; 0: off)")


def validate_source(run: str, checkpoint: str) -> None:
    """--run DIR [--checkpoint best|last|FILE], or --checkpoint FILE alone."""
    if not run and checkpoint in ("", "best", "last"):
        raise GanError("give --run DIR (its best.pt, else its newest checkpoint) or --checkpoint FILE")


@dataclass
class SampleConfig:
    run: str = option("", "run folder to sample from: its best.pt when training evaluated it, else its newest checkpoint")
    checkpoint: str = option("", "best or last (of --run), or a checkpoint file")
    count: int = option(100, "how many images to export (a conditional model spreads them like the training classes)")
    per_class: int = option(0, "export this many images of every class (or of each --class) instead of --count")
    classes: list[str] = option([], "export only this class (repeat the flag for several)", flag="--class")
    out: str = option("", "folder to write the images into (created if missing)")
    seed: int = option(0, "image i uses seed S+i, so the output does not depend on batch size or device")
    batch_size: int = option(64, "images generated per forward pass")
    format: str = option("png", "image file format", ("png", "jpg"))
    grid: str = option("", "also write a preview grid of the first 64 images to this file")
    overwrite: bool = overwrite_export_option()
    device: str = option("auto", "where to generate: auto picks cuda, then mps, then cpu", ("auto", "cuda", "mps", "cpu"))
    workers: int = option(0, "threads that encode and write images (0: one per CPU core)")
    truncation: float = truncation_option()
    reject_copies: bool = option(False, "skip samples that are near-copies of a training image (see gan eval --nearest), "
                                 "generating others in their place")
    label_filter: bool = option(True, "keep only samples that the run's judge (a classifier of its real images) "
                                "puts in the class they were made for, generating others in their place")
    min_confidence: float = option(0.5, "the judge's least probability of the intended class for a sample to be "
                                   "kept by --label-filter")

    def validate(self) -> None:
        reject_non_finite(self)
        validate_source(self.run, self.checkpoint)
        if not self.out:
            raise GanError("--out is required: the folder to write the synthetic images into")
        if self.per_class < 0:
            raise GanError(f"--per-class must be 0 (use --count) or more, got {self.per_class}")
        for name in ("count", "batch_size"):
            if getattr(self, name) < 1:
                raise GanError(f"{flag_name(name)} must be positive, got {getattr(self, name)}")
        check_seed(self.seed, MAX_SEED - self.count)
        check_workers(self.workers)
        check_truncation(self.truncation)
        if not 0 <= self.min_confidence <= 1:
            raise GanError(f"--min-confidence must be in [0, 1], got {self.min_confidence}")


@dataclass
class EvalConfig:
    run: str = option("", "run folder to evaluate: its best.pt when training evaluated it, else its newest checkpoint")
    checkpoint: str = option("", "best or last (of --run), or a checkpoint file")
    real: str = option("", "real images to compare with, e.g. a held-out folder (default: the run's training images)")
    count: int = option(0, "images to generate (0: the run's --eval-count, as training measured)")
    nearest: bool = option(False, "memorization report: each sample's nearest training image, the copy rate, and a grid "
                           "of the closest pairs")
    features: str = option("", "feature space: inception, random, auto or a TorchScript file (default: the run's)")
    inception_weights: str = option("", "Inception-v3 FID weights file (default: the run's)")
    seed: int = option(0, "image i uses seed S+i (training's evaluations use seed 0)")
    truncation: float = truncation_option()
    batch_size: int = option(64, "images per forward pass")
    device: str = option("auto", "where to evaluate: auto picks cuda, then mps, then cpu", ("auto", "cuda", "mps", "cpu"))

    def validate(self) -> None:
        reject_non_finite(self)
        validate_source(self.run, self.checkpoint)
        if self.count < 0 or self.count == 1:
            raise GanError(f"--count must be 0 (the run's) or 2 or more, got {self.count}")
        if self.batch_size < 1:
            raise GanError(f"--batch-size must be positive, got {self.batch_size}")
        check_seed(self.seed, MAX_SEED - max(self.count, 5000))
        check_truncation(self.truncation)


def _validate_classical(ops: str, strength: float) -> None:
    try:
        parse_ops(ops)
    except ValueError as error:
        raise GanError(f"--ops: {error}") from None
    if not 0 < strength <= 4:
        raise GanError(f"--strength must be above 0 and at most 4 (1: the photo presets), got {strength}")


@dataclass
class AugmentConfig:
    data: str = option("", "folder of images to make variants of: flat, or one subfolder per class")
    out: str = option("", "folder to write the variants into, in the same layout (created if missing)")
    per_image: int = option(4, "variants of every image")
    ops: str = option(",".join(CLASSICAL_OPS), "operations to draw from, comma-separated (drop flip for text or digits)")
    strength: float = option(1.0, "scales every operation's range (1: presets suited to photos)")
    seed: int = option(0, "variant k of image i uses seed S + i * per_image + k")
    overwrite: bool = overwrite_export_option()
    background: str = option("white", "colour transparent images are composited onto (name or #rrggbb)")
    max_pixels: int = option(80_000_000, "skip images with more pixels than this (guards against decompression bombs)")
    workers: int = option(0, "threads that read, augment and write images (0: one per CPU core)")

    def validate(self) -> None:
        reject_non_finite(self)
        if not self.data:
            raise GanError("--data is required: the folder of images to make variants of")
        if not self.out:
            raise GanError("--out is required: the folder to write the variants into")
        if self.per_image < 1:
            raise GanError(f"--per-image must be positive, got {self.per_image}")
        _validate_classical(self.ops, self.strength)
        check_seed(self.seed)
        check_workers(self.workers)


@dataclass
class ValueConfig:
    train: str = option("", "labelled real training images: one subfolder per class")
    test: str = option("", "labelled real test images, never used for training (refused if they overlap)")
    out: str = option("", "folder for the report: value.json, report.md and accuracy.png")
    synthetic: str = option("", "synthetic images in class folders (e.g. from gan sample) to mix into training")
    classical: bool = option(False, "also train with classical augmentation on the fly, with and without synthetic")
    synthetic_ratio: float = option(1.0, "synthetic images mixed in per real one")
    seeds: int = option(3, "classifier trainings per configuration (seeds 0, 1, ...): accuracy is their mean ± std")
    epochs: int = option(50, "training length, in passes over the real images (the same steps for every configuration)")
    resolution: int = option(32, "image size the classifier sees, in pixels (a power of two, 16 or more)")
    batch_size: int = option(64, "images per classifier step")
    ops: str = option(",".join(CLASSICAL_OPS), "classical operations used with --classical")
    strength: float = option(1.0, "scales the classical operations' ranges")
    device: str = option("auto", "where to train: auto picks cuda, then mps, then cpu", ("auto", "cuda", "mps", "cpu"))
    cache_dir: str = cache_dir_option()
    overwrite: bool = option(False, "allow writing the report into a folder that already holds files")

    def validate(self) -> None:
        reject_non_finite(self)
        for flag, value in (("--train", self.train), ("--test", self.test), ("--out", self.out)):
            if not value:
                raise GanError(f"{flag} is required (gan value --train DIR --test DIR --out DIR)")
        if not 0 < self.synthetic_ratio <= 100:
            raise GanError(f"--synthetic-ratio must be above 0 (and at most 100), got {self.synthetic_ratio}")
        for name in ("seeds", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise GanError(f"{flag_name(name)} must be positive, got {getattr(self, name)}")
        DataConfig(resolution=self.resolution).validate()
        _validate_classical(self.ops, self.strength)


def to_dict(cfg) -> dict:
    """Plain nested dict of a config, ready for JSON or a checkpoint."""
    return dataclasses.asdict(cfg)


def from_dict(cls, values: dict):
    """Rebuild a config dataclass from `to_dict` output; unknown keys mean a config from another version."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise GanError(f"config has settings this version does not know: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        kwargs[name] = from_dict(kind, value) if dataclasses.is_dataclass(kind) else value
    return cls(**kwargs)


# Settings that change the networks' tensors: a checkpoint only resumes or samples with the same values.
SHAPE_SETTINGS = (
    ("data", "resolution"), ("data", "channels"), ("model", "z_dim"), ("model", "g_channels"), ("model", "d_channels"),
    ("model", "conditional"), ("model", "g_conditioning"), ("model", "spectral_norm"),
)


def shape_differences(saved: RunConfig, wanted: RunConfig) -> list[str]:
    """Human-readable list of model-shape settings that differ, e.g. ['--g-channels 64 in the checkpoint, 128 now']."""
    differences = []
    for section, name in SHAPE_SETTINGS:
        before, now = getattr(getattr(saved, section), name), getattr(getattr(wanted, section), name)
        if before != now:
            differences.append(f"{flag_name(name)} {before} in the checkpoint, {now} now")
    return differences
