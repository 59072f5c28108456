"""Is it any good, and is it copying? Scores a generator against real images (overall and per class), and finds
each sample's nearest training image. Used by training (--eval-every, best.pt) and by `gan eval`."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gan import device as devices
from gan.checkpoint import BEST, load_checkpoint, pick_checkpoint
from gan.command_config import EvalConfig
from gan.config import MetricsConfig, RunConfig
from gan.data import ImageDataset, load_dataset, training_images
from gan.distributed import SINGLE, Ranks
from gan.errors import GanError
from gan.features import FeatureSpace, embed, load_feature_space
from gan.files import write_fix, write_text
from gan.generate import generate, load_generator, spread
from gan.judge import Judge, agreement, run_judge
from gan.copies import NearestTraining, copy_detector, memorization_summary
from gan.metrics import class_kids, distribution_metrics
from gan.pixels import to_signed, to_uint8
from gan.streams import REFERENCE, seeded
from gan.tracking import image_grid, progress_bar, save_png

_PAIRS_SHOWN = 16  # closest sample/training pairs in the memorization grid


def eval_count(requested: int, num_real: int) -> int:
    """Images to generate: as many as there are real ones (FID's bias depends on it), within 500 to 5000."""
    return requested or min(max(num_real, 500), 5000)


def reference_rows(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` rows of a real set, drawn from `seed` with each class keeping its share, in their original order."""
    counts = torch.bincount(labels).tolist()
    draw = seeded(seed, REFERENCE)
    rows = [torch.nonzero(labels == c).flatten()[torch.randperm(n, generator=draw)[:k]]
            for c, (n, k) in enumerate(zip(counts, spread(count, counts)))]
    return torch.cat(rows).sort().values


@dataclass
class Samples:
    images: torch.Tensor  # (N, C, H, W) uint8, as an exported file would hold them
    labels: torch.Tensor | None  # (N,) class of each, for a conditional generator
    seeds: list[int]


# What a training run logs of each evaluation's scores (Evaluator.score): a new metric touches these two.
METRICS = {"Metrics/KID": "kid", "Metrics/FID": "fid", "Metrics/precision": "precision", "Metrics/recall": "recall",
           "Metrics/class_KID": "class_kid", "Metrics/label_agreement": "label_agreement"}


class Evaluator:
    """Scores generators against one set of real images with the same seeds each time, so that successive
    evaluations during training differ only by the generator. Real features are extracted once, at the first
    evaluation: training starts without waiting for them (minutes for thousands of images in Inception on a CPU)."""

    def __init__(self, space: FeatureSpace, real: ImageDataset, class_names: list[str], conditional: bool,
                 count: int, device: torch.device, batch_size: int = 64, seed: int = 0,
                 judge: Callable[[], Judge] | None = None, truncation: float = 0.0, ranks: Ranks = SINGLE,
                 progress: bool = False):
        if len(real) < 2 or count < 2:
            raise GanError(f"the metrics need at least 2 real and 2 generated images, got {len(real)} and {count}")
        self.space, self.device, self.batch_size, self.ranks = space, device, batch_size, ranks
        self.progress = progress  # bars for its long parts (`gan eval`; training shows its own)
        self.class_names = class_names
        # A real set larger than the samples is compared through a subset as large as they are, in each class's
        # share: the metrics' cost grows with the square of the real images (precision and recall), their worth
        # with the smaller side.
        rows = reference_rows(real.labels, count, seed) if len(real) > count else slice(None)
        reference = f", {count} of {len(real)} real images" if len(real) > count else ""
        # What makes two evaluations' numbers comparable (best.pt is only ever replaced by a comparable one).
        truncated = f", truncated at {truncation:g}" if truncation else ""
        self.identity = f"{space.name} features, {count} samples from seed {seed}{truncated}{reference}"
        self.truncation = truncation
        # Real labels as indices into the generator's classes (-1: a class the generator does not know).
        known = torch.tensor([class_names.index(n) if n in class_names else -1 for n in real.class_names])
        self.real_labels = known[real.labels[rows]]
        self.real_images = real.images[rows]
        self.seeds = list(range(seed, seed + count))
        self.make_judge = judge if conditional else None  # asked for at the first evaluation, like the real features
        self.labels = None
        if conditional:  # classes in the proportions of the real set, so the two mixtures are comparable
            counts = torch.bincount(self.real_labels[self.real_labels >= 0], minlength=len(class_names)).tolist()
            self.labels = [c for c, n in enumerate(spread(count, counts)) for _ in range(n)]

    def _bar(self, name: str) -> str:
        return name if self.progress else ""

    @functools.cached_property
    def real(self) -> torch.Tensor:
        return embed(self.space, self.real_images, self.device, self.batch_size, self._bar("real features"))

    @functools.cached_property
    def judge(self) -> Judge | None:
        return self.make_judge() if self.make_judge else None

    def samples(self, G: nn.Module, rows: slice = slice(None)) -> Samples:
        """The evaluation's samples (`rows`: a part of them)."""
        seeds, labels = self.seeds[rows], self.labels[rows] if self.labels is not None else None
        batches = generate(G, seeds, labels, self.batch_size, self.device, truncation=self.truncation)
        if self.progress:
            batches = progress_bar(-(-len(seeds) // self.batch_size), "generating", "batch", iterable=batches)
        images = torch.cat([to_uint8(batch) for batch in batches])
        return Samples(images, torch.tensor(labels) if labels is not None else None, seeds)

    def features(self, samples: Samples) -> torch.Tensor:
        return embed(self.space, samples.images, self.device, self.batch_size, self._bar("sample features"))

    def score(self, fake: torch.Tensor, samples: Samples, per_class: bool = False) -> dict:
        """FID, KID, precision and recall overall, and (per_class) for each class with 2+ images on both sides;
        for a conditional generator also the mean per-class KID and the label agreement."""
        scores = distribution_metrics(self.real, fake)
        if samples.labels is not None:
            kids = class_kids(self.real, self.real_labels, fake, samples.labels, self.class_names)
            scores["class_kid"] = sum(kids.values()) / len(kids) if kids else scores["kid"]
        if self.judge is not None:
            scores.update(agreement(self.judge.probabilities(samples.images, self.device), samples.labels,
                                    self.class_names))
            scores["judge"] = self.judge.describe()
            scores["judge_accuracy"] = self.judge.held_out_accuracy
        if per_class and samples.labels is not None:
            scores["classes"] = {}
            for c, name in enumerate(self.class_names):
                real, generated = self.real[self.real_labels == c], fake[samples.labels == c]
                if min(len(real), len(generated)) >= 2:
                    scores["classes"][name] = distribution_metrics(real, generated)
        return scores

    def evaluate(self, G: nn.Module) -> dict | None:
        """The scores of G. With several processes each makes and embeds its part of the samples, and the first
        scores them all (the others get None)."""
        ranks = self.ranks
        part = self.samples(G, ranks.rows(len(self.seeds)))
        fake, images = ranks.gather(self.features(part)), ranks.gather(part.images)
        labels = ranks.gather(part.labels) if part.labels is not None else None
        return self.score(fake, Samples(images, labels, self.seeds)) if ranks.main else None


def training_space(cfg: RunConfig, dataset: ImageDataset, device: torch.device, log) -> FeatureSpace | None:
    """The features a run's evaluations compare in, loaded before the run folder is made so that a bad file fails
    first (None: evaluation off)."""
    if not cfg.train.eval_every:
        return None
    if len(dataset) < 2:
        log("note: the metrics need at least 2 real images, so this run is not evaluated and keeps no best.pt")
        return None
    return load_feature_space(cfg.metrics, device, log)


def training_evaluator(cfg: RunConfig, space: FeatureSpace, dataset: ImageDataset, device: torch.device,
                       judge: Callable[[], Judge] | None, ranks: Ranks = SINGLE) -> Evaluator:
    """What scores the generator every --eval-every steps, with `judge` for its label agreement."""
    count = eval_count(cfg.train.eval_count, len(dataset))
    return Evaluator(space, dataset, cfg.data.class_names, bool(cfg.num_classes), count, device, judge=judge,
                     ranks=ranks)


def best_so_far(run_dir: Path, evaluator: Evaluator, best_by: str, log) -> tuple[float, int | None]:
    """The score (--best-by) best.pt holds and its step, when it was measured and chosen the way this session does
    (else the first evaluation replaces it): (inf, None) when there is none to beat."""
    best = run_dir / BEST
    if not best.is_file():
        return math.inf, None
    saved = load_checkpoint(str(best))
    chosen = saved.chosen
    if chosen != (evaluator.identity, best_by):
        log(f"note: {best} was scored with {chosen[0]} and chosen by {chosen[1]}, this session scores with "
            f"{evaluator.identity} and chooses by {best_by}; the first evaluation replaces it")
        return math.inf, None
    return float(saved.scores[best_by]), saved.step


def pairs_grid(samples: Samples, nearest: NearestTraining, train: ImageDataset):
    """The samples nearest a training image (in features) beside that image (sample left), closest first."""
    order = nearest.feature_ratio.argsort()[:_PAIRS_SHOWN]
    pairs = [image for i in order for image in (samples.images[i], train.images[nearest.feature_index[i]])]
    return image_grid(to_signed(torch.stack(pairs)))


def _free_suffix(folder: Path, step: int) -> str:
    """'' or -2, -3 ...: the first suffix under which no earlier evaluation of this step left files."""
    for n in itertools.count(1):
        suffix = "" if n == 1 else f"-{n}"
        names = (f"eval-{step:07d}{suffix}.json", f"nearest-{step:07d}{suffix}.png", f"nearest-{step:07d}{suffix}.csv")
        if not any((folder / name).exists() for name in names):
            return suffix


@dataclass
class EvalResult:
    report: dict
    json: Path
    grid: Path | None
    nearest_csv: Path | None


def _real_set(cfg: EvalConfig, trained: RunConfig, log) -> tuple[ImageDataset, str]:
    if not cfg.real:
        return training_images(trained, "evaluating without --real", log), trained.data.path
    if not Path(cfg.real).expanduser().is_dir():
        raise GanError(f"--real {cfg.real} is not a folder: give a folder of real images (flat, or class subfolders)")
    real = load_dataset(dataclasses.replace(trained.data, path=cfg.real), log)
    unknown = [name for name in real.class_names if name not in trained.data.class_names]
    if trained.num_classes and len(unknown) == len(real.class_names):
        log(f"warning: {cfg.real} has none of the run's class folders ({', '.join(trained.data.class_names)}), "
            f"so only the overall metrics are computed")
    elif trained.num_classes and unknown:
        count = sum(real.class_counts[real.class_names.index(name)] for name in unknown)
        log(f"warning: --real {cfg.real} has class folders the run was not trained on ({', '.join(unknown)}): "
            f"their {count} images count in the overall metrics, and in no class's")
    return real, str(Path(cfg.real).expanduser().resolve())


def evaluate_run(cfg: EvalConfig, log: Callable[[str], None] = print) -> EvalResult:
    """`gan eval`: score a checkpoint, write eval-<step>.json (and the memorization files) into its run folder.
    Unless told otherwise it measures as training did (feature space, sample count, seeds), so it repeats the
    numbers training logged."""
    cfg.validate()
    checkpoint = load_checkpoint(pick_checkpoint(cfg.run, cfg.checkpoint))
    trained = checkpoint.saved_config()
    device = devices.pick_device(cfg.device)
    space = load_feature_space(MetricsConfig(cfg.features or trained.metrics.features,
                                             cfg.inception_weights or trained.metrics.inception_weights), device, log)
    real, real_path = _real_set(cfg, trained, log)
    detector = train = None
    if cfg.nearest:  # before the long part, so that a training set too small to check fails at once
        train = real if not cfg.real else training_images(trained, "--nearest", log)
        detector = copy_detector(space, train, device, cfg.batch_size)
    count = eval_count(cfg.count or trained.train.eval_count, len(real))
    compared = f"{count} of its {len(real)}" if len(real) > count else f"{len(real)}"
    log(f"evaluating {checkpoint.path} (step {checkpoint.step}): {count} generated vs {compared} real images, "
        f"'{space.name}' features")
    def judge() -> Judge:
        return run_judge(checkpoint.path.parent, trained, lambda: training_images(trained, "label agreement", log),
                         device, log)

    evaluator = Evaluator(space, real, trained.data.class_names, bool(trained.num_classes), count, device,
                          cfg.batch_size, cfg.seed, judge, cfg.truncation, progress=True)
    samples = evaluator.samples(load_generator(checkpoint, device))
    fake = evaluator.features(samples)
    report = {
        "checkpoint": str(checkpoint.path), "step": checkpoint.step, "features": space.name,
        "comparable_to_published_fid": space.comparable, "real": real_path,
        "num_real": len(evaluator.real_images),
        "num_generated": count, "seed": cfg.seed, "truncation": cfg.truncation,
        **evaluator.score(fake, samples, per_class=True),
    }
    run_dir = checkpoint.path.parent
    name = f"{checkpoint.step:07d}{_free_suffix(run_dir, checkpoint.step)}"
    grid = nearest_csv = None
    if detector:
        nearest = detector.nearest(fake, to_signed(samples.images))
        report["memorization"] = memorization_summary(nearest, detector)
        grid, nearest_csv = run_dir / f"nearest-{name}.png", run_dir / f"nearest-{name}.csv"
    path = run_dir / f"eval-{name}.json"
    try:
        if detector:
            save_png(pairs_grid(samples, nearest, train), grid)
            write_text(nearest_csv, _nearest_rows(samples, nearest, train, trained.data.class_names))
        write_text(path, json.dumps(report, indent=2) + "\n")
    except OSError as error:  # a read-only run or a full disk: the scores, computed at length, are shown all the same
        log(format_report(report))
        raise GanError(f"cannot write {error.filename} ({error.strerror}), so the scores above are not kept. "
                       f"{write_fix(error, run_dir)} to keep them, or copy the run somewhere writable") from None
    return EvalResult(report, path, grid, nearest_csv)


def _nearest_rows(samples: Samples, nearest: NearestTraining, train: ImageDataset, class_names: list[str]) -> str:
    buffer = io.StringIO()
    rows = csv.writer(buffer)
    rows.writerow(["seed", "class", "nearest_by_features", "feature_distance", "feature_ratio", "nearest_by_pixels",
                   "pixel_distance", "pixel_ratio", "copy"])
    for i, seed in enumerate(samples.seeds):
        name = class_names[int(samples.labels[i])] if samples.labels is not None else ""
        rows.writerow([seed, name, train.files[nearest.feature_index[i]], f"{nearest.feature_distance[i]:.5g}",
                       f"{nearest.feature_ratio[i]:.3f}", train.files[nearest.pixel_index[i]],
                       f"{nearest.pixel_distance[i]:.5g}", f"{nearest.pixel_ratio[i]:.3f}", int(nearest.copies[i])])
    return buffer.getvalue()


def format_report(report: dict) -> str:
    """The evaluation as a table a person reads: KID (x 10^3, lower is better) first; for a conditional run also
    each class's label agreement."""
    agreement = report.get("label_agreement_classes")
    lines = [f"{'':14}{'KID x1e3':>16}{'FID':>10}{'precision':>11}{'recall':>8}" + ("   labels" if agreement else "")]

    def row(name: str, s: dict, agrees: float | None = None) -> str:
        kid = f"{1e3 * s['kid']:.2f} ± {1e3 * s['kid_std']:.2f}"
        labels = "" if agrees is None else f"{100 * agrees:>8.1f}%"
        return f"{name[:13]:14}{kid:>16}{s['fid']:>10.2f}{s['precision']:>11.2f}{s['recall']:>8.2f}{labels}"

    lines.append(row("all", report, report.get("label_agreement")))
    lines += [row(name, scores, (agreement or {}).get(name)) for name, scores in report.get("classes", {}).items()]
    if "class_kid" in report:
        lines.append(f"mean per-class KID x1e3: {1e3 * report['class_kid']:.2f} (each class's samples against that "
                     f"class's real images: a sample in the wrong class costs here)")
    if agreement:
        low = [name for name, value in agreement.items() if value is not None and value < 0.9]
        lines.append(f"labels: {100 * report['label_agreement']:.1f}% of the samples show the class they were made "
                     f"for ({report['judge']})" + (f"; below 90%: {', '.join(low)}" if low else ""))
    if not report["comparable_to_published_fid"]:
        lines.append(f"feature space '{report['features']}': compare these numbers only with evaluations in the "
                     f"same space, not with published FIDs")
    memo = report.get("memorization")
    if memo:
        lines.append(
            f"copies: {memo['copies']} of {report['num_generated']} samples ({100 * memo['copy_rate']:.1f}%) are closer "
            f"to a training image than half that image's distance to its nearest training neighbour (training "
            f"images themselves: {100 * memo['real_copy_rate']:.1f}%)"
        )
    return "\n".join(lines)
