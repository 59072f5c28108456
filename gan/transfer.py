"""Transfer: a new run that starts from the networks of an earlier one (--init-from), with D's first blocks
optionally frozen (--freeze-d, Mo et al. 2020). Fine-tuning a GAN trained on a larger, related dataset is the
strongest lever small data has."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch import nn

from gan.checkpoint import Checkpoint, load_checkpoint, pick_checkpoint
from gan.config import RunConfig
from gan.errors import GanError
from gan.models import class_parameter_names
from gan.options import shape_differences, shape_settings


def load_source(path: str) -> Checkpoint:
    """The checkpoint --init-from means: a file, or of a run folder its best.pt, else its newest checkpoint."""
    return load_checkpoint(pick_checkpoint(path, "") if Path(path).expanduser().is_dir() else path)


def inherit_shape(cfg: RunConfig, source: RunConfig) -> None:
    """Give `cfg` the source's model shape (resolution, channels, widths ...), so that flags only need to
    name what should differ, and then get a clear error. Whether the new run is conditional follows its own data."""
    for (mine, declared), (theirs, _) in zip(shape_settings(cfg), shape_settings(source)):
        if declared.name != "conditional":
            setattr(mine, declared.name, getattr(theirs, declared.name))


def start_from(networks: dict[str, nn.Module], source: Checkpoint, cfg: RunConfig, log: Callable[[str], None]) -> None:
    """Load the source's G, D and moving-average G into `networks` (keyed so); class parameters stay as
    initialised when the classes differ. Records the source in cfg.train.init_from."""
    saved = source.saved_config()
    differences = shape_differences(saved, cfg)
    if differences:
        raise GanError(
            f"cannot start from {source.path}: its networks have another shape ({'; '.join(differences)}). "
            f"Drop those flags (the source's values are used then), or start from a run of the same shape."
        )
    new_classes = bool(cfg.num_classes) and saved.data.class_names != cfg.data.class_names
    if new_classes and cfg.model.conditional == "per-class":  # class i's networks would start as another class's
        raise GanError(f"cannot start from {source.path}: a per-class run starts each class from the source's networks "
                       f"of that class, and its classes ({', '.join(saved.data.class_names)}) are not these "
                       f"({', '.join(cfg.data.class_names)}); start from a per-class run of the same classes")
    for key, network in networks.items():
        fresh = class_parameter_names(network) if new_classes else set()
        own = network.state_dict()
        network.load_state_dict({**own, **{k: v for k, v in source.weights(key).items() if k not in fresh}})
    cfg.train.init_from = str(source.path.resolve())
    log(f"starting from {source.path} (step {source.step}): its G, D and moving-average G; optimizers, "
        f"augmentation and step count start afresh")
    if new_classes:
        log(f"new classes ({', '.join(cfg.data.class_names)}; the source had "
            f"{', '.join(saved.data.class_names)}): the class embeddings start from fresh initial weights")


def freeze_blocks(D: nn.Module, count: int, resolution: int) -> list[nn.Parameter]:
    """Freeze D's first `count` blocks; returns the parameters that still train."""
    blocks = D.blocks()
    if count > len(blocks):
        raise GanError(f"--freeze-d {count} is more than the {len(blocks)} blocks D has at {resolution} px; "
                       f"use at most {len(blocks)}")
    frozen = {id(p) for block in blocks[:count] for p in block}
    for parameter in D.parameters():
        if id(parameter) in frozen:
            parameter.requires_grad_(False)
    return [p for p in D.parameters() if id(p) not in frozen]
