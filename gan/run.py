"""A run in progress in its folder: what falls due between training steps (its statistics, sample grids,
checkpoints and evaluations), written by the first process while the others take part where all are needed."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gan.checkpoint import list_checkpoints, save_best, save_checkpoint, training_checkpoint
from gan.config import RunConfig
from gan.data import ImageDataset
from gan.errors import GanError
from gan.evaluate import METRICS, best_so_far, training_evaluator
from gan.features import FeatureSpace
from gan.judge import Judge, run_judge
from gan.models import refresh_batchnorm_stats
from gan.pixels import to_signed
from gan.state import TrainingState
from gan.streams import GRID, NORM, seeded
from gan.step import stacked
from gan.tracking import GRID_ROWS, GRID_SIZE, Tracker

class TrainingDiverged(GanError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


def _grid_inputs(cfg: RunConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed noise (and classes) of every fakes grid: 64 images, or one row of 8 per class."""
    classes = min(cfg.num_classes, GRID_ROWS)
    generator = seeded(cfg.train.seed, GRID)
    if not classes:
        return torch.randn(GRID_SIZE, cfg.model.z_dim, generator=generator).to(device), None
    # The same 8 noise vectors in every row: down a column, only the class changes.
    z = torch.randn(8, cfg.model.z_dim, generator=generator).repeat(classes, 1)
    return z.to(device), torch.arange(classes).repeat_interleave(8).to(device)


def _reals_grid(dataset: ImageDataset, cfg: RunConfig) -> torch.Tensor:
    """64 random training images, or (conditional) one row of 8 per class."""
    order = torch.randperm(len(dataset), generator=seeded(cfg.train.seed, GRID))
    if cfg.num_classes:
        labels = dataset.labels[order]
        rows = [order[labels == c] for c in range(min(cfg.num_classes, GRID_ROWS))]
        pick = torch.cat([row.repeat(-(-8 // len(row)))[:8] for row in rows if len(row)])  # 8 a row, repeating
    else:
        pick = order[:GRID_SIZE]
    return to_signed(dataset.images[pick])


def _unreported_stats(cfg: RunConfig, policy: tuple[str, ...]) -> set[str]:
    """The step's statistics not worth a curve in this run: no flat zero lines for R1 or augmentation when off."""
    skipped = set()
    for name, weight in (("Loss/R1", cfg.train.r1_gamma), ("Loss/R2", cfg.train.r2_gamma),
                         ("Loss/LeCam", cfg.train.lecam_weight)):
        if not weight:
            skipped.add(name)
    if not (cfg.train.class_weight and cfg.model.conditional == "on"):
        skipped.add("Loss/class")
    if not policy:
        skipped |= {"Augment/p", "Augment/rt"}
    return skipped


class Run:
    """A run in progress in its folder: what falls due between steps (stats, grids, checkpoints, evaluations).
    Only the first process writes; the others take part in what needs all of them."""

    def __init__(self, run_dir: Path, cfg: RunConfig, state: TrainingState, dataset: ImageDataset,
                 space: FeatureSpace | None, start: int, log):
        self.run_dir, self.cfg, self.state, self.dataset = run_dir, cfg, state, dataset
        self.main = state.ranks.main
        t, device = cfg.train, state.device
        self.last_scores: dict | None = None  # the latest evaluation's (first process only)
        self.grid_z, self.grid_labels = _grid_inputs(cfg, device)
        self.unreported = _unreported_stats(cfg, state.policy)
        self.ema_stats_step = None
        self.tracker = Tracker(run_dir, t.steps, start, t.batch_size, t.tensorboard, log) if self.main else None
        self.evaluator = None  # evaluation off (space None)
        if space is not None:
            def judge() -> Judge:  # trained at the first evaluation, and kept in the run folder
                return run_judge(run_dir, cfg, lambda: dataset, device, self.tracker.message)

            self.evaluator = training_evaluator(cfg, space, dataset, device, judge if self.main else None,
                                                state.ranks)
        # What best.pt holds (inf, None: none yet, or none comparable).
        self.best_score, self.best_step = (best_so_far(run_dir, self.evaluator, t.best_by, log)
                                           if self.evaluator and self.main else (math.inf, None))

    def begin(self, start: int) -> None:
        if not self.main:
            return
        if not (self.run_dir / "reals.png").exists():
            self.tracker.images("Samples/reals", _reals_grid(self.dataset, self.cfg), start, "reals.png")
        if start == 0:
            self.save_grid(0)
        self.tracker.restart_clock()

    def close(self) -> None:
        if self.tracker:
            self.tracker.close()

    def message(self, text: str) -> None:
        if self.tracker:
            self.tracker.message(text)

    def _refresh_ema_stats(self, step: int) -> None:
        """The moving-average G's BatchNorm statistics, measured on it, from the same noise every time."""
        if self.ema_stats_step == step:  # grids and checkpoints often fall on the same step
            return
        cfg, device = self.cfg, self.state.device
        generator = seeded(cfg.train.seed, NORM)
        # Every class in every batch, twice at least: each network of a per-class G measures its own statistics.
        rows = max(GRID_SIZE, 2 * cfg.num_classes)
        labels = (torch.arange(rows) % cfg.num_classes).to(device) if cfg.num_classes else None
        batches = [(torch.randn(rows, cfg.model.z_dim, generator=generator).to(device), labels) for _ in range(4)]
        refresh_batchnorm_stats(self.state.nets.G_ema, batches)
        self.ema_stats_step = step

    def save_grid(self, step: int) -> None:
        if not self.main:
            return
        self._refresh_ema_stats(step)
        with torch.no_grad():
            fakes = self.state.nets.G_ema(self.grid_z, self.grid_labels)
        self.tracker.images("Samples/fixed_noise", fakes, step, f"fakes-{step:07d}.png")

    def _checkpoint(self, step: int) -> dict:
        return training_checkpoint(self.state.state_dict(), step, self.cfg, self.dataset.fingerprint)

    def save(self, step: int) -> Path | None:
        """checkpoint-<step>.pt (by the first process; None on the others)."""
        if not self.main:
            return None
        self._refresh_ema_stats(step)
        return save_checkpoint(self.run_dir, self._checkpoint(step), self.cfg.train.keep)

    def evaluate(self, step: int) -> bool:
        """Score the moving-average G, keep best.pt and log the scores; True (on every process) when --patience has
        run out. Only the evaluations every --eval-every steps count, not the closing one of a run whose --steps
        falls between them: a run carried on by a resume then counts as the uninterrupted one does."""
        self._refresh_ema_stats(step)
        scores = self.evaluator.evaluate(self.state.nets.G_ema)  # every process makes its share of the samples
        t = self.cfg.train
        counted = bool(t.patience) and step % t.eval_every == 0
        if self.main:
            self._keep(step, scores, counted)
        return counted and self._out_of_patience(step)

    def _keep(self, step: int, scores: dict, counted: bool) -> None:
        self.last_scores = scores
        best_by, note = self.cfg.train.best_by, ""
        improved = scores[best_by] < self.best_score
        if counted:  # before best.pt is written, which holds the count as this step's checkpoint does
            self._count(improved, scores.get("label_agreement"))
        if improved:
            self.best_score, self.best_step = scores[best_by], step
            save_best(self.run_dir, self._checkpoint(step), scores, self.evaluator.identity, best_by)
            note = "  (best so far: best.pt)"
        agreement = {f"Agreement/{name}": value for name, value in scores.get("label_agreement_classes", {}).items()
                     if value is not None}
        self.tracker.metrics(step, {name: scores[key] for name, key in METRICS.items() if key in scores}, note,
                             agreement)
        self.tracker.restart_clock()

    def _count(self, improved_score: bool, agreement: float | None) -> None:
        """--patience's count: back to 0 when the score or the label agreement improved, else one more."""
        state = self.state
        best_agreement = state.best_agreement.item()
        improved = improved_score or (agreement is not None and agreement > best_agreement)
        if agreement is not None:
            state.best_agreement.fill_(max(agreement, best_agreement))
        state.stale_evaluations.fill_(0 if improved else state.stale_evaluations.item() + 1)

    def _out_of_patience(self, step: int) -> bool:
        """Whether --patience stops the run now. Only the first process saw the scores: the others take its count
        (so that every process keeps the same state) and all of them stop at the same step."""
        state, t = self.state, self.cfg.train
        stale, best_agreement = state.ranks.broadcast((state.stale_evaluations.item(), state.best_agreement.item()))
        state.stale_evaluations.fill_(stale)
        state.best_agreement.fill_(best_agreement)
        if stale < t.patience or step == t.steps:  # at --steps the run ends anyway
            return False
        score = "class KID" if t.best_by == "class_kid" else "KID"
        what = f"neither {score} nor label agreement improved" if self.cfg.num_classes else f"{score} did not improve"
        best = f"best at step {self.best_step}: best.pt" if self.best_step is not None else "no best.pt"
        last = f"the last {stale} evaluations" if stale > 1 else "the last evaluation"
        self.message(f"stopping early at step {step}: {what} in {last} ({best})")
        return True

    def report(self, window: list[dict[str, torch.Tensor]], step: int) -> None:
        """The steps' statistics since the last report, averaged over the processes so that all of them see a
        non-finite loss, into the tracker; `window` is emptied."""
        names, values = stacked(window)
        values = self.state.ranks.average(values).cpu()  # the only host sync, every log_every steps
        finite = torch.isfinite(values).all(1)
        if not finite.all():
            bad_step = step - len(window) + 1 + int((~finite).nonzero()[0])
            saved = list_checkpoints(self.run_dir)
            last_good = f"the last good checkpoint is {saved[-1]}" if saved else "no checkpoint was saved yet"
            raise TrainingDiverged(
                f"the loss became non-finite (NaN or inf) at step {bad_step}; stopping. {last_good}. "
                f"Resume it with lower learning rates (--d-lr, --g-lr) or --precision fp32."
            )
        if self.main:
            t = self.cfg.train
            stats = {name: value for name, value in zip(names, values.mean(0).tolist()) if name not in self.unreported}
            self.tracker.scalars(step, {**stats, "LR/G": t.g_lr, "LR/D": t.d_lr})
        window.clear()
