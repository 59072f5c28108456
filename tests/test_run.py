"""A run in progress: what falls due between steps (statistics, grids, checkpoints, evaluations and best.pt), and
a loss that turns non-finite."""

import pytest
import torch

import gan.losses as losses_module
from helpers import stats_records, tiny_config
from gan.checkpoint import list_checkpoints, load_checkpoint
from gan.errors import GanError
from gan.run import TrainingDiverged
from gan.train import train


def test_non_finite_loss_stops_with_step_and_last_good_checkpoint(flat_folder, tmp_path, monkeypatch):
    calls = []
    real_d_loss, real_g_loss = losses_module.LOSSES["nonsaturating"]

    def g_loss_that_explodes_at_step_3(logits, real_logits):
        calls.append(1)
        loss = real_g_loss(logits, real_logits)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setitem(losses_module.LOSSES, "nonsaturating", (real_d_loss, g_loss_that_explodes_at_step_3))
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=6)
    with pytest.raises(TrainingDiverged, match=r"non-finite .* at step 3.*checkpoint-0000002\.pt"):
        train(cfg, log=lambda _: None)
    run_dir = tmp_path / "runs" / "00000-flat"
    assert [p.name for p in list_checkpoints(run_dir)] == ["checkpoint-0000002.pt"]  # no NaN weights saved


def test_tensorboard_gets_losses_probabilities_speed_and_grids(flat_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=2)
    cfg.train.tensorboard = True
    result = train(cfg, log=lambda _: None)
    events = EventAccumulator(str(result.run_dir)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"Loss/D", "Loss/G", "D/real", "D/fake", "Speed/img_per_s", "LR/G", "LR/D"} <= scalars
    assert {"Samples/reals", "Samples/fixed_noise"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Scalars("Loss/D")] == [2]


def test_evaluations_are_logged_and_keep_the_best_checkpoint(class_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(class_folder, tmp_path / "runs", steps=5)
    cfg.train.eval_every, cfg.train.tensorboard = 2, True
    lines = []
    result = train(cfg, log=lines.append)
    evaluations = stats_records(result.run_dir, "Metrics/KID")
    assert [s["step"] for s in evaluations] == [2, 4, 5]  # every 2 steps and at the end
    assert all({"Metrics/FID", "Metrics/precision", "Metrics/recall", "Metrics/class_KID", "Metrics/label_agreement",
                "Agreement/cats", "Agreement/dogs"} <= s.keys() for s in evaluations)
    best = min(evaluations, key=lambda s: s["Metrics/class_KID"])  # a conditional run: by the per-class KID
    saved = load_checkpoint(str(result.run_dir / "best.pt"))
    assert saved.step == best["step"] and saved.state["metrics"]["class_kid"] == best["Metrics/class_KID"]
    assert saved.state["best_by"] == "class_kid" and (result.run_dir / "judge.pt").is_file()
    assert any("(best so far: best.pt)" in line for line in lines)
    events = EventAccumulator(str(result.run_dir)).Reload()
    assert [e.step for e in events.Scalars("Metrics/KID")] == [2, 4, 5]


def test_no_evaluation_means_no_best_checkpoint(flat_folder, tmp_path):
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=2)
    cfg.train.eval_every = 0
    result = train(cfg, log=lambda _: None)
    assert not (result.run_dir / "best.pt").exists() and not stats_records(result.run_dir, "Metrics/KID")


def test_resume_only_replaces_best_with_a_better_comparable_score(flat_folder, tmp_path):
    cfg = tiny_config(flat_folder, tmp_path / "runs", steps=2)
    run = train(cfg, log=lambda _: None).run_dir
    best = load_checkpoint(str(run / "best.pt"))
    assert best.state["evaluation"] == "random features, 16 samples from seed 0"

    def resume_to(steps: int, **metrics) -> list[str]:
        checkpoint = load_checkpoint(str(run))
        resumed = checkpoint.saved_config()
        resumed.train.steps = steps
        for name, value in metrics.items():
            setattr(resumed.train if name == "eval_count" else resumed.metrics, name, value)
        lines = []
        train(resumed, resume=checkpoint, log=lines.append)
        return lines

    # An unbeatable score in best.pt (as if a later, lost stretch of the run had scored it) is kept ...
    torch.save({**best.state, "metrics": {**best.state["metrics"], "kid": -1.0}}, run / "best.pt")
    resume_to(4)
    assert load_checkpoint(str(run / "best.pt")).state["metrics"]["kid"] == -1.0
    # ... until evaluations are measured another way, which cannot be compared with it.
    lines = resume_to(6, eval_count=20)
    assert any("the first evaluation replaces it" in line for line in lines)
    replaced = load_checkpoint(str(run / "best.pt"))
    assert replaced.step == 6 and replaced.state["evaluation"] == "random features, 20 samples from seed 0"


def test_a_failing_evaluation_comes_after_the_checkpoint(flat_folder, tmp_path, monkeypatch):
    import gan.evaluate

    def broken(self, G):
        raise GanError("evaluation broke")

    monkeypatch.setattr(gan.evaluate.Evaluator, "evaluate", broken)
    with pytest.raises(GanError, match="evaluation broke"):
        train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=lambda _: None)
    assert [p.name for p in list_checkpoints(tmp_path / "runs" / "00000-flat")] == ["checkpoint-0000002.pt"]
