"""`gan value`: does adding synthetic images help a classifier? The same small CNN (gan.classify) is trained on
real images only, with classical augmentation, with synthetic images, and with both, for several seeds, and
tested on real images it never saw. What the accuracies say, and the report's files, are gan.value_report's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from gan import device as devices
from gan.classical import batch_augmenter
from gan.classify import TrainingSet, accuracy, embed, predict, probabilities, train_classifier
from gan.command_config import ValueConfig, parse_ops
from gan.config import DataConfig
from gan.data import ImageDataset, load_dataset
from gan.errors import GanError
from gan.files import out_folder, prepare_out
from gan.folders import check_folder
from gan.copies import CopyDetector, near_copies
from gan.judge import agreement
from gan.metrics import precision_recall
from gan.options import to_dict
from gan.streams import VALUE_CLASSICAL, VALUE_SYNTHETIC, seeded
from gan.value_report import (BOTH, CLASSICAL, ONLY, REAL, SYNTHETIC, ValueResult, at, combine_diagnoses, conclusions,
                              condition_report, write_report)

KINDS = {"real": REAL, "classical": CLASSICAL, "synthetic": SYNTHETIC, "both": BOTH, "only": ONLY}  # --conditions


@dataclass
class _Sets:
    train: TrainingSet
    test: TrainingSet
    synthetic: TrainingSet | None
    class_names: list[str]


def _load(path: str, flag: str, cfg: ValueConfig, channels: int, log) -> ImageDataset:
    root = check_folder(path, flag)
    if not any(child.is_dir() and not child.name.startswith(".") for child in root.iterdir()):
        raise GanError(f"{flag} {path} has no class subfolders: gan value needs labelled images, one subfolder per "
                       f"class with the same names in --train, --test and --synthetic")
    return load_dataset(DataConfig(path=path, resolution=cfg.resolution, channels=channels, cache_dir=cfg.cache_dir),
                        log)


def _labelled_as(dataset: ImageDataset, class_names: list[str], flag: str) -> TrainingSet:
    """`dataset` with its labels as indices into the training classes; a class the training set lacks is an error."""
    unknown = [name for name in dataset.class_names if name not in class_names]
    if unknown:
        raise GanError(f"{flag} has class folders that --train does not have ({', '.join(unknown)}); the classes "
                       f"must match by folder name ({', '.join(class_names)})")
    index = torch.tensor([class_names.index(name) for name in dataset.class_names])
    return TrainingSet(dataset.images, index[dataset.labels])


def _refuse_overlap(test: ImageDataset, others: list[tuple[ImageDataset, str, str]], cfg: ValueConfig) -> None:
    """A test image that is also a training (or synthetic) image, or a near-copy of one, would measure memory, not
    accuracy."""
    for dataset, root, flag in others:
        shared = [(name, dataset.files[k]) for name, k in zip(test.files, near_copies(test.images, dataset.images))
                  if k is not None]
        if shared:
            example = f"{cfg.test}/{shared[0][0]} = {root}/{shared[0][1]}"
            raise GanError(f"{len(shared)} images in --test are also in {flag}, or near-copies of its images (e.g. "
                           f"{example}): the test set must be images no training set contains; remove them from one "
                           f"of the folders")


def _refuse_out_inside_inputs(cfg: ValueConfig) -> None:
    out = Path(cfg.out).expanduser().resolve()
    for flag, folder in (("--train", cfg.train), ("--test", cfg.test), ("--synthetic", cfg.synthetic)):
        root = Path(folder).expanduser().resolve() if folder else None
        if root and (out == root or root in out.parents):
            raise GanError(f"--out {cfg.out} is inside {flag} {folder}: the report would become part of the images; "
                           f"choose a folder outside it")


def _load_sets(cfg: ValueConfig, log) -> _Sets:
    train = _load(cfg.train, "--train", cfg, 0, log)
    if len(train.class_names) < 2:
        raise GanError(f"--train {cfg.train} has one class folder ({train.class_names[0]}): a classifier needs two or "
                       f"more")
    channels = train.images.shape[1]
    test = _load(cfg.test, "--test", cfg, channels, log)
    synthetic = _load(cfg.synthetic, "--synthetic", cfg, channels, log) if cfg.synthetic else None
    _refuse_overlap(test, [(train, cfg.train, "--train")] + ([(synthetic, cfg.synthetic, "--synthetic")] if synthetic
                                                              else []), cfg)
    names = train.class_names
    sets = _Sets(TrainingSet(train.images, train.labels), _labelled_as(test, names, "--test"),
                 _labelled_as(synthetic, names, "--synthetic") if synthetic else None, names)
    missing = [name for c, name in enumerate(names) if not (sets.test.labels == c).any()]
    if missing:
        log(f"warning: --test has no images of {', '.join(missing)}: accuracy covers the other classes only")
    return sets


def _wanted(sets: _Sets, share: float, c: int) -> int:
    """Synthetic images of class c that `share` (of --synthetic-ratio) asks for."""
    return round(share * int((sets.train.labels == c).sum()))


def _note_short_classes(sets: _Sets, cfg: ValueConfig, log) -> None:
    share = max(cfg.shares())  # a class short at a smaller share is short at the largest
    for c, name in enumerate(sets.class_names):
        available = int((sets.synthetic.labels == c).sum())
        if _wanted(sets, share, c) > available:
            log(f"note: --synthetic-ratio {share:g} asks for {_wanted(sets, share, c)} synthetic {name} "
                f"images; {cfg.synthetic} has {available}, and all of them are used")


def _mixed(sets: _Sets, share: float, seed: int) -> tuple[TrainingSet, int]:
    """The real images plus `share` synthetic images per real one of each class (a different random subset for
    each seed; all there are when a class has fewer), and how many synthetic images that is. The subsets of one
    seed are nested, a smaller share taking the first of the same draw, so shares differ by their share alone."""
    real, synthetic = sets.train, sets.synthetic
    generator = seeded(seed, VALUE_SYNTHETIC)
    picks = []
    for c in range(len(sets.class_names)):
        available = (synthetic.labels == c).nonzero().flatten()
        picks.append(available[torch.randperm(len(available), generator=generator)[:_wanted(sets, share, c)]])
    pick = torch.cat(picks)
    return TrainingSet(torch.cat([real.images, synthetic.images[pick]]),
                       torch.cat([real.labels, synthetic.labels[pick]])), len(pick)


def _training_set(kind: str, sets: _Sets, share: float, seed: int) -> tuple[TrainingSet, int]:
    """What a configuration of `kind` (REAL ... ONLY) trains on for `seed`, and how many synthetic images that holds."""
    if kind == REAL or kind == CLASSICAL:
        return sets.train, 0
    mixed, count = _mixed(sets, share, seed)
    if kind == ONLY:
        return TrainingSet(mixed.images[-count:], mixed.labels[-count:]), count
    return mixed, count


def _warn_unused(cfg: ValueConfig, log) -> None:
    defaults = ValueConfig()
    if not cfg.synthetic and cfg.synthetic_ratio != defaults.synthetic_ratio:
        log("warning: --synthetic-ratio has no effect without --synthetic")
    if not cfg.classical and (cfg.ops, cfg.strength) != (defaults.ops, defaults.strength):
        log("warning: --ops and --strength have no effect without --classical")


def _conditions(cfg: ValueConfig) -> list[tuple[str, str, float]]:
    """(name, kind, synthetic images per real one) of every configuration to train (--conditions): real images (and
    classical augmentation), then synthetic images mixed in at each share, then the synthetic images alone, as many
    as at the largest share."""
    chosen = {KINDS[name] for name in cfg.chosen_conditions()}
    planned = [(kind, kind, 0.0) for kind in (REAL, CLASSICAL) if kind in chosen]
    if cfg.synthetic:
        shares = cfg.shares()
        for share in shares:
            tag = share if len(shares) > 1 else None  # one share keeps the plain names
            planned += [(at(kind, tag), kind, share) for kind in (SYNTHETIC, BOTH) if kind in chosen]
        if ONLY in chosen:
            planned.append((ONLY, ONLY, shares[-1]))
    return planned


def _diagnose(model: torch.nn.Module, sets: _Sets, device: torch.device) -> dict:
    """What a classifier of the real images sees in the synthetic ones: their label agreement, how many are
    near-copies of a training image, and how much of the training images' variety they cover (recall), in its
    own features."""
    synthetic, train = sets.synthetic, sets.train
    found = agreement(probabilities(model, synthetic.images, device), synthetic.labels, sets.class_names)
    real_features, fake_features = embed(model, train.images, device), embed(model, synthetic.images, device)
    detector = CopyDetector(real_features, train.images.float())
    copies = detector.nearest(fake_features, synthetic.images.float()).copies
    return {"label_agreement_run": found, "copy_rate": float(copies.double().mean()),
            "real_copy_rate": detector.real_copy_rate,
            "recall": precision_recall(real_features, fake_features)["recall"]}


def measure_value(cfg: ValueConfig, log: Callable[[str], None] = print) -> ValueResult:
    """Train the classifier on every configuration and seed; write value.json, report.md and accuracy.png."""
    cfg.validate()
    started = time.perf_counter()
    _refuse_out_inside_inputs(cfg)
    out_folder(cfg.out, cfg.overwrite)  # before the decoding, which can take a while
    _warn_unused(cfg, log)
    device = devices.pick_device(cfg.device)
    sets = _load_sets(cfg, log)
    if sets.synthetic is not None:
        _note_short_classes(sets, cfg, log)
    out = prepare_out(cfg.out, cfg.overwrite)
    real = sets.train
    classes = len(sets.class_names)
    steps = cfg.epochs * math.ceil(len(real.labels) / cfg.batch_size)
    planned = _conditions(cfg)
    log(f"training {len(planned) * cfg.seeds} classifiers of {steps} steps on {device}: "
        f"{', '.join(name for name, _, _ in planned)}; {cfg.seeds} seeds each")
    kinds = {kind for _, kind, _ in planned}
    judged_by = CLASSICAL if CLASSICAL in kinds else REAL  # the judge of label agreement: trained as gan.judge trains
    shares = cfg.shares() if kinds & {SYNTHETIC, BOTH} else ()
    results, used, diagnoses = {}, 0, []
    for name, kind, share in planned:
        runs = []
        for seed in range(cfg.seeds):  # the same seeds for every configuration: the gains are paired by seed
            data, count = _training_set(kind, sets, share, seed)
            used = max(used, count)
            augment = None
            if kind in (CLASSICAL, BOTH):
                generator = seeded(seed, VALUE_CLASSICAL)
                augment = batch_augmenter(parse_ops(cfg.ops), cfg.strength, generator)
            model = train_classifier(data, classes, steps, cfg.batch_size, seed, device, augment)
            runs.append(accuracy(predict(model, sets.test.images, device), sets.test.labels, classes))
            if kind == judged_by and sets.synthetic is not None:  # what a classifier of real images sees
                diagnoses.append(_diagnose(model, sets, device))
        results[name] = condition_report(runs, sets.class_names)
        log(f"  {name:34} {100 * results[name]['mean']:5.1f} ± {100 * results[name]['std']:.1f}% test accuracy")
    diagnosis = combine_diagnoses(diagnoses, sets.class_names) if diagnoses else None
    report = {
        **conclusions(results, shares, diagnosis),
        "conditions": results,
        "classes": sets.class_names,
        "train_images": len(real.labels),
        "test_images": len(sets.test.labels),
        "synthetic_images": len(sets.synthetic.labels) if sets.synthetic is not None else 0,
        "synthetic_used": used,
        "synthetic_ratio": used / len(real.labels),
        "steps": steps,
        "device": str(device),
        "settings": to_dict(cfg),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if diagnosis:
        report["diagnosis"] = {**diagnosis, "judged_by": judged_by}
    return write_report(report, out)


