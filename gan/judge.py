"""The judge: does a generated image show the class it was made for? A classifier (gan.classify's SmallCNN)
trained once per run on the run's own real images, with classical augmentation (shifts, colour), and kept in the run folder as
judge.pt, so training's evaluations, `gan eval` and `gan sample` all ask the same one.

A fifth of each class is held out of its training (HELD_OUT), and its accuracy on those images is kept with it:
label agreement can only be trusted as far as the judge itself is right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gan.classify import SmallCNN, TrainingSet, accuracy, probabilities, train_classifier
from gan.config import RunConfig
from gan.data import ImageDataset
from gan.diffaugment import diff_augment
from gan.errors import GanError
from gan.files import save_torch
from gan.pixels import to_signed, to_uint8
from gan.streams import JUDGE_AUGMENT, JUDGE_SPLIT, seeded

JUDGE = "judge.pt"
FORMAT, VERSION = "gan-judge", 1
HELD_OUT = 0.2  # of each class with 5 images or more
EPOCHS = 100  # passes over the judge's training images, within the step bounds below
MIN_STEPS, MAX_STEPS = 50, 1500
BATCH_SIZE = 64
WEAK = 0.8  # below this held-out accuracy the report says that agreement figures mean little
BAR = 0.8  # a class whose samples the judge recognises less often than this does not hold its labels


@dataclass
class Judge:
    model: nn.Module  # SmallCNN in eval mode, on the CPU
    class_names: list[str]
    resolution: int
    channels: int
    held_out_accuracy: float | None  # None: no class had enough images to hold any out
    held_out_images: int
    trained_on: int

    def probabilities(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(N, num_classes) class probabilities of uint8 images (N, C, H, W), on the CPU."""
        return probabilities(self.model.to(device), images, device)

    def describe(self) -> str:
        """What the agreement figures rest on, in a sentence for reports."""
        if self.held_out_accuracy is None:
            return (f"judged by a classifier trained on the run's {self.trained_on} images; too few images to hold "
                    f"any out, so its own accuracy is unknown and agreement is a rough figure")
        sentence = (f"judged by a classifier trained on {self.trained_on} of the run's images, "
                    f"{100 * self.held_out_accuracy:.0f}% right on the {self.held_out_images} held out")
        if self.held_out_accuracy < WEAK:
            sentence += "; a judge this weak makes agreement a rough figure"
        return sentence


def agreement(probabilities: torch.Tensor, intended: torch.Tensor, class_names: list[str]) -> dict:
    """Label agreement: the share of images made for each class that a classifier puts in that class, per class
    and overall (the same count `gan value` makes with its own classifiers)."""
    overall, per_class = accuracy(probabilities.argmax(1), intended, len(class_names))
    return {"label_agreement": overall, "label_agreement_classes": dict(zip(class_names, per_class))}


def label_warnings(scores: dict | None, conditional: str) -> list[str]:
    """For each class whose samples the judge recognised less often than BAR (in an evaluation's `scores`), one
    plain sentence with the fix; none when every class holds or nothing judged the labels. `conditional`: the
    run's --conditional, since a per-class run's labels are right by construction and its fix is another."""
    failing = {name: share for name, share in (scores or {}).get("label_agreement_classes", {}).items()
               if share is not None and share < BAR}
    if conditional == "per-class":
        verdict = "its generator does not make that class recognisably yet"
        fix = "train longer or add images of that class"
    else:
        verdict = "its labels do not hold"
        fix = ("train with --conditional per-class (one generator per class, labels right by construction) or add "
               "images of that class")
    rough = _rough(scores.get("judge_accuracy")) if failing else ""
    return [f"class '{name}': only {100 * share:.0f}% of its samples are recognisably {name} (the bar is "
            f"{100 * BAR:.0f}%{rough}): {verdict}. Fix: {fix}; gan sample's label filter leaves such samples out "
            f"meanwhile." for name, share in failing.items()]


def _rough(judge_accuracy: float | None) -> str:
    """What a label warning adds when the judge itself is not to be trusted far."""
    if judge_accuracy is None:
        return "; a rough figure: too few images to measure the run's judge"
    if judge_accuracy < WEAK:
        return f"; a rough figure: the run's judge is right on only {100 * judge_accuracy:.0f}% of held-out images"
    return ""


def held_out_split(labels: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, held-out indices): HELD_OUT of each class with 5 images or more, at random."""
    train, held = [], []
    for c in labels.unique().tolist():
        members = (labels == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = round(HELD_OUT * len(members)) if len(members) >= 5 else 0
        held.append(members[:count])
        train.append(members[count:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def _shifts_and_colours(mirror: bool, generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 batch -> uint8 batch: classical shifts and colour changes (and flips where the run mirrors: a mirrored
    3 is no 3), batched: gan.classical's per-image operations cost many times the classifier's own step."""
    policy = ("translation", "color") + (("flip",) if mirror else ())
    p = torch.tensor(0.5)

    def shifted(batch: torch.Tensor) -> torch.Tensor:
        return to_uint8(diff_augment(to_signed(batch), policy, p, generator))

    return shifted


def train_judge(dataset: ImageDataset, cfg: RunConfig, device: torch.device) -> Judge:
    """A judge for `dataset` (the run's training images), repeatable from the run's --seed."""
    seed = cfg.train.seed
    train_index, held_index = held_out_split(dataset.labels, seeded(seed, JUDGE_SPLIT))
    steps = min(MAX_STEPS, max(MIN_STEPS, EPOCHS * math.ceil(len(train_index) / BATCH_SIZE)))
    augment = _shifts_and_colours(cfg.data.mirror, seeded(seed, JUDGE_AUGMENT))
    data = TrainingSet(dataset.images[train_index], dataset.labels[train_index])
    model = train_classifier(data, len(dataset.class_names), steps, BATCH_SIZE, seed, device, augment,
                             progress="judge").cpu()
    judge = Judge(model, dataset.class_names, cfg.data.resolution, int(dataset.images.shape[1]), None,
                  len(held_index), len(train_index))
    if len(held_index):
        probabilities = judge.probabilities(dataset.images[held_index], device)
        judge.held_out_accuracy = accuracy(probabilities.argmax(1), dataset.labels[held_index],
                                           len(dataset.class_names))[0]
    return judge


def save_judge(judge: Judge, path: Path) -> None:
    state = {"format": FORMAT, "version": VERSION, "model": judge.model.state_dict(),
             "class_names": judge.class_names, "resolution": judge.resolution, "channels": judge.channels,
             "held_out_accuracy": judge.held_out_accuracy, "held_out_images": judge.held_out_images,
             "trained_on": judge.trained_on}
    save_torch(state, path)


def load_judge(path: Path) -> Judge | None:
    """The judge saved at `path`, or None when there is none (or it cannot be read: it is simply trained again)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT or state.get("version") != VERSION:
            return None
        model = SmallCNN(state["channels"], len(state["class_names"]))
        model.load_state_dict(state["model"])
    except Exception:  # truncated or foreign: a judge is cheap to make again, a run is not
        return None
    return Judge(model.eval(), state["class_names"], state["resolution"], state["channels"],
                 state["held_out_accuracy"], state["held_out_images"], state["trained_on"])


def run_judge(run_dir: Path, cfg: RunConfig, images: Callable[[], ImageDataset], device: torch.device,
              log: Callable[[str], None] = print) -> Judge:
    """The run's judge: judge.pt from `run_dir` when it was trained for this run's classes and images, else
    trained now on `images()` (the run's training images) and saved there for next time."""
    path = Path(run_dir) / JUDGE
    judge = load_judge(path)
    data = cfg.data
    if judge and (judge.class_names, judge.resolution, judge.channels) == (data.class_names, data.resolution,
                                                                           data.channels):
        return judge
    dataset = images()
    if len(dataset.class_names) < 2:
        raise GanError("a judge needs two or more classes")
    log(f"training the run's judge (a classifier of its {len(dataset)} real images, once per run: {path.name})")
    judge = train_judge(dataset, cfg, device)
    try:
        save_judge(judge, path)
    except OSError as error:
        log(f"warning: cannot save {path} ({error.strerror}); the judge will be trained again next time")
    log(f"judge: {judge.describe()}")
    return judge
