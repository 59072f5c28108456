"""A run in progress: what falls due between steps (statistics, grids, checkpoints, evaluations and best.pt), a
loss that turns non-finite, and --patience, which ends a run whose evaluations stopped improving."""

import pytest
import torch

import gan.losses as losses_module
from helpers import TINY_FLAGS, stats_records, tiny_config
from gan.checkpoint import list_checkpoints, load_checkpoint
from gan.cli import main
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


def test_a_failing_evaluation_still_writes_the_checkpoint_due(flat_folder, tmp_path, monkeypatch):
    import gan.evaluate

    def broken(self, G):
        raise GanError("evaluation broke")

    monkeypatch.setattr(gan.evaluate.Evaluator, "evaluate", broken)
    with pytest.raises(GanError, match="evaluation broke"):
        train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=lambda _: None)
    assert [p.name for p in list_checkpoints(tmp_path / "runs" / "00000-flat")] == ["checkpoint-0000002.pt"]


# --- --patience ------------------------------------------------------------------------------------------------------

# (class KID, label agreement) of the evaluation at each step, from step 1: the count of evaluations without gain
# goes 0 0 0 1 0 1 2 (--patience 2 stops at step 7: 4.4 is no better than 3.9, 0.60 no better than 0.60), then 3.
SCRIPT = [(5.0, 0.50), (4.0, 0.40), (4.5, 0.60), (4.2, 0.55), (3.9, 0.50), (4.0, 0.58), (4.4, 0.60), (4.3, 0.50),
          (3.0, 0.90), (2.0, 0.95)]


def scripted(monkeypatch, start: int) -> None:
    """Evaluations (one a step, from step start + 1) that score as SCRIPT says, whatever the generator makes."""
    import gan.evaluate

    script = iter(SCRIPT[start:])

    def evaluate(self, G):
        kid, agreement = next(script)
        return {"kid": kid, "class_kid": kid, "label_agreement": agreement, "judge_accuracy": 1.0,
                "label_agreement_classes": {"cats": agreement, "dogs": agreement}}

    monkeypatch.setattr(gan.evaluate.Evaluator, "evaluate", evaluate)


def patient(class_folder, out, steps: int):
    cfg = tiny_config(class_folder, out, steps=steps)
    cfg.train.eval_every, cfg.train.patience = 1, 2
    return cfg


def resume_to(run_dir, steps: int, monkeypatch, lines: list[str]):
    checkpoint = load_checkpoint(str(run_dir))
    scripted(monkeypatch, checkpoint.step)
    cfg = checkpoint.saved_config()
    assert cfg.train.patience == 2  # the flag comes back with the run's settings
    cfg.train.steps = steps
    return train(cfg, resume=checkpoint, log=lines.append)


def test_patience_stops_once_neither_score_nor_agreement_improved_and_saves_a_normal_end(class_folder, tmp_path,
                                                                                         monkeypatch):
    scripted(monkeypatch, 0)
    lines = []
    result = train(patient(class_folder, tmp_path / "runs", steps=10), log=lines.append)
    assert (result.step, result.stopped_early, result.interrupted) == (7, True, False)
    assert ("stopping early at step 7: neither class KID nor label agreement improved in the last 2 evaluations "
            "(best at step 5: best.pt)") in lines
    assert result.checkpoint.name == "checkpoint-0000007.pt" and (result.run_dir / "fakes-0000007.png").is_file()
    assert [s["step"] for s in stats_records(result.run_dir)] == [2, 4, 6, 7]  # the last steps' losses reported
    assert load_checkpoint(str(result.run_dir / "best.pt")).step == 5
    state = load_checkpoint(str(result.checkpoint)).state
    assert (state["stale_evaluations"].item(), state["best_agreement"].item()) == (2, 0.60)
    # Agreement at 50% in every class: the run ends by saying so, class by class, with the fix.
    assert [line.split(":")[0] for line in lines if "its labels do not hold" in line] == ["class 'cats'",
                                                                                        "class 'dogs'"]


def test_a_resume_counts_on_where_the_run_stopped_and_stops_alike(class_folder, tmp_path, monkeypatch):
    scripted(monkeypatch, 0)
    full = train(patient(class_folder, tmp_path / "a", steps=10), log=lambda _: None)
    scripted(monkeypatch, 0)
    half = train(patient(class_folder, tmp_path / "b", steps=4), log=lambda _: None)
    assert half.step == 4 and not half.stopped_early
    assert load_checkpoint(str(half.checkpoint)).state["stale_evaluations"].item() == 1
    resumed = resume_to(half.run_dir, 10, monkeypatch, [])
    assert (resumed.step, resumed.stopped_early) == (7, True)
    a, b = load_checkpoint(str(full.checkpoint)).state, load_checkpoint(str(resumed.checkpoint)).state
    assert all(torch.equal(a[key], b[key]) for key in ("stale_evaluations", "best_agreement"))
    assert all(torch.equal(a["G_ema"][name], b["G_ema"][name]) for name in a["G_ema"])
    # Carried on again with its patience used up, it stops at its next evaluation that brings no gain.
    lines = []
    again = resume_to(full.run_dir, 10, monkeypatch, lines)
    assert (again.step, again.stopped_early) == (8, True)
    assert any("stopping early at step 8" in line and "in the last 3 evaluations" in line for line in lines)


def test_the_command_ends_early_with_its_summary_and_resume_auto_leaves_the_finished_run(class_folder, tmp_path,
                                                                                          monkeypatch, capsys):
    scripted(monkeypatch, 0)
    flags = ["--data", str(class_folder), *TINY_FLAGS, "--no-tensorboard", "--out", str(tmp_path / "runs"),
             "--steps", "10", "--eval-every", "1", "--patience", "2"]
    assert main(["train", *flags]) == 0
    out = capsys.readouterr().out
    assert "stopped early at step 7 (--patience" in out and "--resume" in out and "--patience 0" in out
    assert main(["train", "--resume", "auto", *flags]) == 0
    assert "stopped early at step 7, when --patience 2 ran out: nothing to do" in capsys.readouterr().out
    assert load_checkpoint(str(tmp_path / "runs" / "00000-classes")).step == 7  # nothing trained on


def test_patience_without_evaluations_is_refused(class_folder, tmp_path, capsys):
    flags = ["--data", str(class_folder), *TINY_FLAGS, "--out", str(tmp_path), "--patience", "3", "--eval-every", "0"]
    assert main(["train", *flags, "--dry-run"]) == 1
    assert capsys.readouterr().err == ("error: --patience 3 counts evaluations, which --eval-every 0 turns off: give "
                                       "--eval-every N (steps between evaluations), or drop --patience\n")


def test_a_real_run_stops_where_its_logged_scores_say_and_names_the_classes_under_the_bar(class_folder, tmp_path):
    cfg = tiny_config(class_folder, tmp_path / "runs", steps=8)
    cfg.train.eval_every, cfg.train.patience = 1, 1
    lines = []
    result = train(cfg, log=lines.append)
    evaluations = stats_records(result.run_dir, "Metrics/KID")
    best_kid, best_agreement, expected = float("inf"), 0.0, 8
    for record in evaluations:  # --patience 1: the first evaluation that improves neither ends the run
        kid, agreement = record["Metrics/class_KID"], record["Metrics/label_agreement"]
        if kid >= best_kid and agreement <= best_agreement and record["step"] < 8:
            expected = record["step"]
            break
        best_kid, best_agreement = min(kid, best_kid), max(agreement, best_agreement)
    assert result.step == expected == evaluations[-1]["step"] and result.stopped_early == (expected < 8)
    below = [name for name in ("cats", "dogs") if evaluations[-1][f"Agreement/{name}"] < 0.8]
    assert [name for name in ("cats", "dogs") if any(line.startswith(f"class '{name}'") for line in lines)] == below
