"""Every random stream of the project, in one place. A stream is a torch generator seeded `seed * SPACING +` its
number, from the --seed of the run or command that draws it; its name says who draws it, and what from.

Two numbers are shared: the judge's streams and the training's normalisation and augmentation streams are drawn
from the same run --seed with the same numbers (3 and 4), for unrelated purposes. Moving the judge's would change
every run's judge, and with it what the label filter keeps, so they stay until a release may change outputs."""

from __future__ import annotations

import torch

SPACING = 8  # numbers per seed: config.check_seed keeps seed * SPACING + number within 64 bits

# gan train, from the run's --seed
DATA, NOISE, GRID, NORM, AUGMENT = range(5)
# the evaluations' subset of a large real set, from the evaluation's --seed
REFERENCE = 5
# the run's judge (gan.judge), from the run's --seed: its held-out split and its augmentation
JUDGE_SPLIT, JUDGE_AUGMENT = 3, 4
# Every stream drawn from a run's --seed, by name: none may take another's number (but the judge's two, above).
FROM_RUN_SEED = {"data": DATA, "noise": NOISE, "grid": GRID, "norm": NORM, "augment": AUGMENT,
                 "judge split": JUDGE_SPLIT, "judge augment": JUDGE_AUGMENT}
# gan value, from each classifier seed: classical augmentation, and the draw of synthetic images
VALUE_CLASSICAL, VALUE_SYNTHETIC = 1, 2


def seeded(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * SPACING + stream)
