"""Run folders (numbered, never reused, one writer at a time) and complete, atomic, safely loadable training
checkpoints."""

from __future__ import annotations

import errno
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from gan.config import RunConfig
from gan.errors import GanError, first_line
from gan.files import FolderLock, human_size, is_refused, save_torch, write_fix, write_text
from gan.options import from_dict, to_dict

FORMAT = "gan-checkpoint"
VERSION = 4  # 2: class conditioning, augmentation state, spectral norm; 3: conditional BatchNorm G, class term;
# 4: R2, the penalties' decay, LeCam, transfer (--init-from, --freeze-d)
# Settings each version added, with the values that reproduce what the versions before it trained (so their runs
# load, sample and resume as before).
_ADDED_IN = {
    3: {"model": {"g_conditioning": "concat"}, "train": {"class_weight": 0.0}},
    4: {"train": {"r2_gamma": 0.0, "gamma_final": 1.0, "gamma_decay_steps": 0, "lecam_weight": 0.0, "init_from": "",
                  "freeze_d": 0}},
}
_READABLE = (2, 3, VERSION)
_RUN_DIR = re.compile(r"^(\d{5})-")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)\.pt$")
BEST = "best.pt"  # the checkpoint with the best --best-by score so far; never pruned
_LOW_SPACE = 64 * 2**20  # a write that fails with less free than this failed for want of space

def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def new_run_dir(out: str, name: str) -> Path:
    """Create `out/NNNNN-name`, numbered one past the highest existing run, so no run is ever written over."""
    root = Path(out).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanError(f"cannot create the runs folder {root} ({error.strerror}); choose another with --out") from None
    safe_name = _safe_name(name)
    taken = [int(m.group(1)) for p in root.iterdir() if (m := _RUN_DIR.match(p.name))]
    number = max(taken, default=-1) + 1
    while True:  # another process may take the same number between our scan and mkdir
        run_dir = root / f"{number:05d}-{safe_name}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            number += 1


def is_run_folder(folder: Path) -> bool:
    """A folder `gan train` made (numbered, or holding a run's config.json), not one a checkpoint was copied into."""
    return bool(_RUN_DIR.match(folder.name)) or (folder / "config.json").is_file()


def newest_run(out: str, name: str) -> Path | None:
    """The highest-numbered run folder called `name` in `out` (what --resume auto continues), or None."""
    pattern = re.compile(rf"^\d{{5}}-{re.escape(_safe_name(name))}$")
    root = Path(out).expanduser()
    runs = sorted(p for p in root.iterdir() if pattern.match(p.name) and p.is_dir()) if root.is_dir() else []
    return runs[-1] if runs else None


class RunLock(FolderLock):
    """The one process allowed to write a run folder (see FolderLock)."""

    def __init__(self, run_dir: Path):
        super().__init__(run_dir, "trained", "two writers would replace each other's checkpoints. Wait for it to "
                         "finish or stop it, then resume")


def save_config(run_dir: Path, cfg: RunConfig) -> None:
    write_text(Path(run_dir) / "config.json", json.dumps(to_dict(cfg), indent=2) + "\n")


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints in a run folder, oldest first by step number (not by name or mtime)."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).iterdir() if (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def _write(path: Path, state: dict) -> Path:
    try:
        save_torch({"format": FORMAT, "version": VERSION, **state}, path, durable=True)
    except (OSError, RuntimeError) as error:  # torch's writer reports a full disk as a RuntimeError
        raise unwritable(path.parent, path, error, _tensor_bytes(state)) from None
    return path


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(map(_tensor_bytes, value.values()))
    return sum(map(_tensor_bytes, value)) if isinstance(value, (list, tuple)) else 0


def unwritable(run_dir: Path, file: Path | str, error: Exception, needed: int = 0) -> GanError:
    """A write into a run folder that failed (a full disk, permissions), told with what is kept and how to go on."""
    free = shutil.disk_usage(run_dir).free
    if not is_refused(error) and (getattr(error, "errno", None) == errno.ENOSPC or free < _LOW_SPACE):
        reason = "the disk is full"
    else:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else first_line(error)
    saved = list_checkpoints(run_dir)
    then = f"continue with: gan train --resume {run_dir}" if saved else "run the same command again"
    kept = f"the newest complete checkpoint is {saved[-1].name}" if saved else "no checkpoint was saved yet"
    size = f" (a checkpoint takes about {human_size(needed)})" if needed and not is_refused(error) else ""
    return GanError(f"cannot write {file} ({reason}; {human_size(free)} free there): {kept}. "
                    f"{write_fix(error, run_dir)}{size}, then {then}")


def training_checkpoint(training_state: dict, step: int, cfg: RunConfig, data_fingerprint: str) -> dict:
    """What a checkpoint holds: the step, the run's config, its data's fingerprint and the training state
    (gan.state.TrainingState.state_dict(): one key per saved field), as plain tensors and dicts."""
    return {"step": step, "config": to_dict(cfg), "data_fingerprint": data_fingerprint, **training_state}


def save_checkpoint(run_dir: Path, state: dict, keep: int) -> Path:
    """Write `state` as checkpoint-<step>.pt (temp file, then rename), then delete all but the newest `keep`."""
    path = _write(Path(run_dir) / f"checkpoint-{state['step']:07d}.pt", state)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save_best(run_dir: Path, state: dict, scores: dict, evaluation: str, best_by: str) -> Path:
    """Write `state` as best.pt: a complete checkpoint, so it can be sampled, evaluated or resumed, with the
    evaluation's `scores`, how they were measured (`evaluation`) and which of them chose it (`best_by`)."""
    return _write(Path(run_dir) / BEST, {**state, "metrics": scores, "evaluation": evaluation, "best_by": best_by})


def find_checkpoint(path: str) -> Path:
    """A checkpoint file as given, or the newest one in a run folder."""
    target = Path(path).expanduser()
    if not target.exists():
        raise GanError(f"{target} does not exist: give a run folder (checkpoints/00000-name) or a checkpoint-*.pt file")
    if target.is_file():
        return target
    found = list_checkpoints(target)
    if not found:
        raise GanError(f"{target} holds no checkpoint-*.pt file: is it a run folder, and did the run save a checkpoint?")
    return found[-1]


def pick_checkpoint(run: str, choice: str) -> str:
    """The checkpoint a command means: --checkpoint FILE; or of --run DIR, best.pt (the default when training
    evaluated the run) or the newest (`last`)."""
    folder = Path(run).expanduser()
    if not run or choice not in ("", "best", "last"):
        file = Path(choice).expanduser()
        if run and file.resolve().parent != folder.resolve():
            raise GanError(f"--checkpoint {file} is not in --run {folder}: give the file alone, or best / last")
        return choice or run
    best = folder / BEST
    if choice == "best" and not best.is_file():
        raise GanError(f"{folder} has no {BEST}: training writes it when --eval-every is on. Use --checkpoint last")
    return str(best if choice != "last" and best.is_file() else find_checkpoint(run))


def _instead(broken: Path) -> str:
    """A pointer to the newest other checkpoint in the same folder that reads, if there is one."""
    candidates = [*reversed(list_checkpoints(broken.parent)), broken.parent / BEST]
    for other in (p for p in candidates if p.resolve() != broken.resolve()):
        try:
            if other.is_file() and torch.load(other, map_location="cpu", weights_only=True).get("format") == FORMAT:
                return f". {other.name} in the same folder reads: use it instead (gan train --resume {other})"
        except Exception:  # damaged as well: try the next one
            continue
    return ""


@dataclass
class Checkpoint:
    state: dict  # see training_checkpoint for the keys
    path: Path

    def saved_config(self) -> RunConfig:
        """A fresh copy of the config the checkpoint was trained with (callers may change it)."""
        return from_dict(RunConfig, self.state["config"])

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def data_fingerprint(self) -> str | None:
        return self.state.get("data_fingerprint")

    def weights(self, network: str) -> dict:
        """The saved weights of a network: G, D or G_ema (KeyError when it holds none)."""
        return self.state[network]

    @property
    def chosen(self) -> tuple[str | None, str]:
        """How a best.pt was chosen: the evaluation that scored it and --best-by (before --best-by: kid)."""
        return self.state.get("evaluation"), self.state.get("best_by", "kid")

    @property
    def scores(self) -> dict:
        """A best.pt's evaluation scores, by name ({} for other checkpoints)."""
        return self.state.get("metrics", {})


def load_checkpoint(path: str) -> Checkpoint:
    """Load a checkpoint (file or run folder) onto the CPU with weights_only=True; check it is one of ours."""
    file = find_checkpoint(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a torch file, or holding objects weights_only refuses
        raise GanError(f"cannot read checkpoint {file}: it is damaged, incomplete or not written by `gan train` "
                       f"({first_line(error)}){_instead(file)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GanError(f"{file} is not a checkpoint written by `gan train`{_instead(file)}")
    version = state.get("version")
    if version not in _READABLE:
        raise GanError(
            f"{file} has checkpoint format version {version}, from another version of gan; this one reads versions "
            f"{', '.join(map(str, _READABLE))}. Train a new run (or use the gan version that wrote it)."
        )
    for added_in, sections in _ADDED_IN.items():
        if version < added_in:
            for section, values in sections.items():
                for name, value in values.items():
                    state["config"][section].setdefault(name, value)
    return Checkpoint(state, file)
