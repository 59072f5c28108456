"""Typed configuration of a training run (gan train): one dataclass per concern, validated with messages that name
the flag, and the options every command shares. The other commands' configurations are gan.command_config's.

Every field declared with `option` becomes a command-line flag (see `gan.cli`) and declares its own range and
whether it fixes the networks' shape (see `gan.options`), so a knob is written once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gan.errors import GanError
from gan.options import (COUNT, DECAY, FRACTION, POSITIVE, WEIGHT, WORKERS, Colour, Duration, PowerOfTwo,
                         Range, check_declared, derived, option)

AUGMENTATIONS = ("translation", "cutout", "color", "flip")
DEFAULT_POLICY = "translation,cutout,color"  # flip only where the data allows it (not for text, digits ...)
SMALL_DATA = 30_000  # below this many images, discriminators memorise: augment and regularise by default
MAX_SEED = 2**60  # torch generators take 64-bit seeds; gan.streams derives up to 8 streams from one seed


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


def check_seed(seed: int, last: int = MAX_SEED - 1) -> None:
    if not 0 <= seed <= last:
        raise GanError(f"--seed must be between 0 and {last}, got {seed}")


DEVICES = ("auto", "cuda", "mps", "cpu")


def device_option(what: str):
    return option("auto", f"where to {what}: auto picks cuda, then mps, then cpu", DEVICES)


def workers_option(what: str):
    return option(0, f"{what} (0: one per CPU core)", within=WORKERS)


RESOLUTION = PowerOfTwo(16, 4096)
MAX_SAMPLES = 50_000  # what the standard FID uses; more only grows the features held in memory
def background_option():
    return option("white", "colour transparent images are composited onto (name or #rrggbb)", within=Colour())


def max_pixels_option():
    return option(80_000_000, "skip images with more pixels than this (guards against decompression bombs)",
                  within=POSITIVE)


def cache_dir_option():
    """--cache-dir, for every command that decodes image folders."""
    return option("", "where the decoded-image cache lives (default: $XDG_CACHE_HOME/gan or ~/.cache/gan)")


@dataclass
class DataConfig:
    path: str = option("", "folder of images: flat, or one subfolder per class", flag="--data")
    resolution: int = option(64, "training resolution in pixels (a power of two from 16 to 4096)", within=RESOLUTION,
                             shape=True)
    channels: int = option(0, "1 (grayscale) or 3 (colour); 0 picks 1 when every image is grayscale", (0, 1, 3),
                           shape=True)
    mirror: bool = option(False, "also train on horizontally flipped images")
    class_balance: bool = option(False, "sample every class equally often, however many images it has")
    background: str = background_option()
    max_pixels: int = max_pixels_option()
    workers: int = workers_option("processes that decode images")
    cache: bool = option(True, "cache decoded images so the next run on the same folder starts at once")
    cache_dir: str = cache_dir_option()
    ram_limit_gb: float = option(1.0, "decoded images larger than this (GiB) are memory-mapped from the cache file "
                                 "instead of loaded into RAM", within=Range(0, zero="always memory-map"))
    class_names: list[str] = derived(list)
    class_counts: list[int] = derived(list)
    num_images: int = derived(int)

    def validate(self) -> None:
        check_declared(self)


# Far wider than any published GAN (StyleGAN: 512), and small enough that a network's size is still a number the
# memory estimate can count before it refuses.
WIDTH = Range(1, 8192)


@dataclass
class ModelConfig:
    z_dim: int = option(100, "length of the generator's noise vector", within=WIDTH, shape=True)
    g_channels: int = option(64, "generator width: channels of its last hidden layer (doubling towards 4x4, at most "
                             "8x)", within=WIDTH, shape=True)
    d_channels: int = option(64, "discriminator width: channels of its first layer (doubling, at most 8x)",
                             within=WIDTH, shape=True)
    conditional: str = option("auto", "class-conditional G and D (on), one unconditional G and D per class whose "
                              "labels hold by construction (per-class), or off; auto: on when the data has 2+ class "
                              "folders", ("auto", "on", "per-class", "off"), shape=True)
    g_conditioning: str = option("concat", "how a conditional G takes the class: concat (an embedding joined to the "
                                 "noise) or cbn (conditional BatchNorm in every block)", ("concat", "cbn"), shape=True)
    spectral_norm: str = option("auto", "spectral normalisation instead of BatchNorm in D; auto: on below "
                                "30k images", ("auto", "on", "off"), shape=True)

    def validate(self) -> None:
        check_declared(self)


@dataclass
class TrainConfig:
    steps: int = option(5000, "total generator steps for the run (on --resume: the step to carry the run on to)",
                        within=POSITIVE)
    batch_size: int = option(64, "images per step for the discriminator and the generator", within=POSITIVE)
    g_lr: float = option(2e-4, "generator Adam learning rate", within=POSITIVE)
    d_lr: float = option(2e-4, "discriminator Adam learning rate", within=POSITIVE)
    beta1: float = option(0.5, "Adam beta1 for both networks", within=DECAY)
    beta2: float = option(0.999, "Adam beta2 for both networks", within=DECAY)
    ema_decay: float = option(0.999, "decay of the generator's moving average used for grids and export (0: off)",
                              within=DECAY)
    loss: str = option("nonsaturating", "adversarial loss: rpgan pairs every real image with a fake and asks D to "
                       "score the real one higher (R3GAN)", ("nonsaturating", "hinge", "rpgan"))
    class_weight: float = option(1.0, "weight of the class term of a conditional run (--conditional on): "
                                 "cross-entropy of D's class scores on real images (for D) and on fakes (for G), as "
                                 "in AC-GAN; without it a generator can ignore the class (0: off)", within=WEIGHT)
    class_blend_steps: int = option(0, "transitional conditioning (Shahbazi et al. 2022): a conditional run trains "
                                    "unconditionally for the first half of this many steps, then blends the class "
                                    "in linearly until it counts fully (0: conditional from the start)",
                                    within=COUNT)
    r1_gamma: float = option(0.0, "weight of the R1 gradient penalty on real images (0: off)", within=WEIGHT)
    r2_gamma: float = option(0.0, "weight of the R2 gradient penalty on generated images (0: off); R3GAN uses R1 and "
                             "R2 with the same weight", within=WEIGHT)
    r1_every: int = option(16, "apply R1 and R2 every this many steps, scaled up to match (lazy regularisation)",
                           within=POSITIVE)
    gamma_final: float = option(1.0, "R1 and R2 weights at the last step, as a fraction of --r1-gamma and "
                                "--r2-gamma, reached along a cosine (1: constant; R3GAN decays them to 0.1)",
                                within=FRACTION)
    gamma_decay_steps: int = option(0, "steps over which R1 and R2 fall to --gamma-final, then stay there (0: the "
                                    "run's --steps when it starts; a resume keeps the value, so it repeats exactly)",
                                    within=COUNT)
    lecam_weight: float = option(0.0, "weight of LeCam regularisation, which pulls D's logits towards the moving "
                                 "averages of its outputs (limited-data GANs; 0: off)", within=WEIGHT)
    init_from: str = option("", "start a new run from the networks of this run folder or checkpoint (transfer "
                            "from a related, larger dataset); class parameters start afresh when the classes differ")
    freeze_d: int = option(0, "keep the first N blocks of D as they were (Freeze-D: for fine-tuning with --init-from)",
                           within=COUNT)
    augment: str = option("auto", "discriminator augmentation: the operations D sees real and fake images through, "
                          "comma-separated from translation, cutout, color, flip; none: off; auto: "
                          "translation,cutout,color below 30k images (gan augment writes classical variants instead)")
    augment_p: str = option("auto", "probability of each discriminator augmentation: a number in [0, 1], or auto to "
                            "adapt it to the discriminator's overfitting")
    augment_target: float = option(0.6, "the overfitting signal E[sign(D(real))] that auto p aims for", within=DECAY)
    seed: int = option(0, "random seed: the same seed, data and settings repeat a CPU run exactly")
    device: str = device_option("train")
    precision: str = option("auto", "auto: bf16 autocast where the GPU or CPU computes bf16 natively, else fp32",
                            ("auto", "fp32", "bf16"))
    compile: bool = option(False, "torch.compile both networks (CUDA; slower start, faster steps)")
    compile_mode: str = option("default", "what --compile optimises for: reduce-overhead also replays each network's "
                               "steps as CUDA graphs, so that a fast GPU does not wait on kernel launches (CUDA only)",
                               ("default", "reduce-overhead", "max-autotune"))
    log_every: int = option(20, "steps between reading losses into TensorBoard, stats.jsonl and the progress bar",
                            within=POSITIVE)
    image_every: int = option(500, "steps between sample grids (fakes-<step>.png and TensorBoard)", within=POSITIVE)
    checkpoint_every: int = option(1000, "steps between checkpoints (one is always written at the end)",
                                   within=POSITIVE)
    keep: int = option(3, "how many of the newest checkpoints to keep", within=POSITIVE)
    eval_every: int = option(1000, "steps between evaluations (KID, FID, precision/recall, label agreement in "
                             "TensorBoard); the best by --best-by is kept as best.pt (0: off)",
                             within=Range(0, zero="off"))
    best_by: str = option("auto", "what best.pt is chosen by: kid, or class_kid (the mean per-class KID, where a "
                          "sample in the wrong class costs); auto: class_kid for a conditional run",
                          ("auto", "kid", "class_kid"))
    eval_count: int = option(0, "images generated per evaluation (0: as many as the real images, 500 to 5000)",
                             within=Range(2, MAX_SAMPLES, zero="auto"))
    patience: int = option(0, "stop before --steps once this many evaluations in a row (every --eval-every steps) "
                           "improved neither the --best-by score nor, for a conditional run, the label agreement: "
                           "small-data GANs peak and then get worse (0: off; --steps stays the bound)",
                           within=Range(0, zero="off"))
    time_limit: str = option("", "end the run after this much training, e.g. 30m, 2h or 1h30m, with an evaluation "
                             "and a checkpoint as at --steps (a resume gets the time again)", within=Duration("none"))
    out: str = option("checkpoints", "folder where numbered run folders are created")
    name: str = option("", "run folder name after its number (default: the data folder's name)")
    tensorboard: bool = option(True, "write TensorBoard events (stats.jsonl is written either way)")

    def validate(self) -> None:
        check_declared(self)
        check_seed(self.seed)
        if self.patience and not self.eval_every:
            raise GanError(f"--patience {self.patience} counts evaluations, which --eval-every 0 turns off: give "
                           f"--eval-every N (steps between evaluations), or drop --patience")
        if self.compile_mode != "default" and not self.compile:
            raise GanError(f"--compile-mode {self.compile_mode} takes effect with --compile: add --compile, or pass "
                           f"--compile-mode default")
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
class MetricsConfig:
    """The feature space the metrics are computed in (see gan.features)."""

    features: str = option("auto", "feature space for the metrics: inception (standard FID), random (a fixed random "
                           "CNN, no download), a TorchScript file, or auto: inception if its weights are on disk")
    inception_weights: str = option("", "Inception-v3 FID weights file (default: looked for in the torch hub cache)")

    def validate(self) -> None:
        check_declared(self)
        if not self.features:
            raise GanError("--features must be auto, inception, random or a TorchScript file")


@dataclass
class RunConfig:
    """Everything a training run needs; saved as config.json in the run folder and inside every checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def validate(self) -> None:
        for section in (self.data, self.model, self.train, self.metrics):
            section.validate()

    @property
    def num_classes(self) -> int:
        """Classes the networks are conditioned on (0: unconditional)."""
        return len(self.data.class_names) if self.model.conditional in ("on", "per-class") else 0

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
            self.train.best_by = "kid" if self.model.conditional == "off" else "class_kid"
        if self.train.class_blend_steps and self.model.conditional != "on":
            raise GanError(f"--class-blend-steps blends the class into one conditional G and D, which --conditional "
                           f"{self.model.conditional} does not train: drop it, or train with --conditional on")
