"""gan grow: the whole journey on tiny data, its split, its resumption, its verdict and its report."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import gan.grow as grow_module
from helpers import coloured
from gan.command_config import GrowConfig
from gan.errors import GanError
from gan.grow import grow


def quiet(_):
    pass


def shrink_the_gan(monkeypatch):
    """The journey's GAN, shrunk to train in seconds (16 px, narrow networks, a few steps)."""
    real_config = grow_module.gan_config

    def tiny(cfg, train_dir, runs):
        run = real_config(cfg, train_dir, runs)
        run.data.workers = 1
        run.model.z_dim = run.model.g_channels = run.model.d_channels = 8
        t = run.train
        t.steps, t.batch_size, t.log_every, t.tensorboard = 4, 8, 2, False
        t.eval_every = t.checkpoint_every = t.image_every = 2
        t.eval_count = 16
        run.metrics.features = "random"
        return run

    monkeypatch.setattr(grow_module, "gan_config", tiny)


@pytest.fixture(autouse=True)
def tiny_gan(monkeypatch):
    shrink_the_gan(monkeypatch)


def settings(data, out, **extra) -> GrowConfig:
    values = dict(data=str(data), out=str(out), resolution=16, seeds=2, epochs=1, device="cpu", synthetic_ratio="0.5,1")
    return GrowConfig(**{**values, **extra})


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    base = tmp_path_factory.mktemp("grow")
    data = coloured(base / "data", 10, seed=0)
    with pytest.MonkeyPatch.context() as patch:
        shrink_the_gan(patch)
        result = grow(settings(data, base / "out"), log=quiet)
    return data, result


def test_a_journey_hands_over_a_folder_and_a_report_that_names_every_stage_command(journey):
    data, result = journey
    report = result.report.read_text()
    assert report.startswith("# Synthetic images ") and result.verdict in report.splitlines()[0]
    for command in ("gan value --train", "gan train --data", "--per-real 1 --reject-copies", "--near"):
        assert command in report
    stages = json.loads((result.out / "journey.json").read_text())["stages"]
    assert list(stages) == ["split", "baseline", "train", "sampled", "anchored", "measure sampled",
                            "measure anchored", "hand over"]
    assert stages["hand over"]["mode"] in ("sampled", "anchored")
    assert result.images.is_dir()


def test_the_held_out_images_never_reach_the_gan(journey):
    from gan.checkpoint import load_checkpoint

    data, result = journey
    with open(result.out / "split" / "split.csv", newline="") as listing:
        rows = list(csv.DictReader(listing))
    held = {row["file"] for row in rows if row["part"] == "test"}
    assert len(rows) == 20 and len(held) == 4 and {row["class"] for row in rows if row["part"] == "test"} == {"red",
                                                                                                          "blue"}
    trained = load_checkpoint(str(result.out / "runs" / "00000-grow")).saved_config().data
    assert trained.path == str(result.out / "split" / "train")
    trained_on = {p.relative_to(result.out / "split" / "train").as_posix()
                  for p in (result.out / "split" / "train").rglob("*.png")}
    assert len(trained_on) == 16 and not trained_on & held


def test_the_same_command_again_redoes_no_stage(journey, monkeypatch):
    import gan.train
    import gan.value

    data, result = journey
    for module, name in ((gan.train, "train"), (gan.value, "measure_value")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail(f"{name} ran again"))
    lines = []
    again = grow(settings(data, result.out), log=lines.append)
    assert again.verdict == result.verdict and sum("done in an earlier try" in line for line in lines) == 8


def test_a_journey_killed_mid_stage_carries_on_from_that_stage(tmp_path, monkeypatch):
    import gan.sample
    import gan.train

    data = coloured(tmp_path / "data", 6, seed=1)
    real_export = gan.sample.export

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gan.sample, "export", killed)
    with pytest.raises(KeyboardInterrupt):
        grow(settings(data, tmp_path / "out"), log=quiet)
    monkeypatch.setattr(gan.sample, "export", real_export)
    monkeypatch.setattr(gan.train, "train", lambda *a, **k: pytest.fail("the GAN was trained again"))
    lines = []
    grow(settings(data, tmp_path / "out"), log=lines.append)
    assert [line.split(":")[0] for line in lines if "done in an earlier try" in line] == [
        "[1/8] split", "[2/8] baseline", "[3/8] train"]


def blue(count: int) -> torch.Tensor:
    return torch.tensor([40.0, 40.0, 200.0]).view(1, 3, 1, 1).expand(count, 3, 16, 16) / 127.5 - 1


def test_a_generator_that_ignores_its_labels_leads_to_did_not_help(tmp_path, monkeypatch):
    import gan.near
    import gan.sample

    def blue_whatever_the_label(G, seeds, labels, batch_size, device, truncation=0.0):
        for start in range(0, len(seeds), batch_size):  # the blue class's colour, for red and blue alike
            yield blue(len(seeds[start : start + batch_size]))

    monkeypatch.setattr(gan.sample, "generate", blue_whatever_the_label)
    monkeypatch.setattr(gan.near, "variants", lambda G, z, labels, seeds, device: blue(len(seeds)))
    result = grow(settings(coloured(tmp_path / "data", 10, seed=2), tmp_path / "out"), log=quiet)
    assert not result.helped and result.verdict.startswith("Synthetic images did not help your data")
    assert not (tmp_path / "out" / "images").exists()


def test_a_different_journey_in_the_same_folder_is_refused(journey, tmp_path):
    data, result = journey
    with pytest.raises(GanError, match=r"holds a journey with other settings \(--seed 0 -> 1\)"):
        grow(settings(data, result.out, seed=1), log=quiet)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(GanError, match="already holds files"):
        grow(settings(data, tmp_path / "mine"), log=quiet)


def test_a_class_of_one_image_cannot_be_split(tmp_path):
    data = coloured(tmp_path / "data", 1, seed=3)
    with pytest.raises(GanError, match="class blue has 1 image: gan grow holds out at least one image"):
        grow(settings(data, tmp_path / "out"), log=quiet)


def test_a_damaged_journey_file_is_named(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "journey.json").write_text("{not json")
    with pytest.raises(GanError, match=r"cannot read .*journey.json .*choose another --out"):
        grow(settings(coloured(tmp_path / "data", 2, seed=4), tmp_path / "out"), log=quiet)


def measurements(monkeypatch, real, classical, grown):
    """gan value replaced by fixed accuracies per seed: `grown` maps each kind of synthetic image to its accuracy with
    real images and classical augmentation at share 1 (share 0.5 gains nothing). Returns the settings it was given."""
    import gan.value
    from gan.value_report import BOTH, CLASSICAL, REAL

    given = []

    def measured(cfg, log):
        given.append(cfg)
        if not cfg.synthetic:
            return SimpleNamespace(report={"conditions": {REAL: {"accuracy": real}, CLASSICAL: {"accuracy": classical}}})
        return SimpleNamespace(report={"conditions": {CLASSICAL: {"accuracy": classical},
                                                      f"{BOTH} x0.5": {"accuracy": classical},
                                                      f"{BOTH} x1": {"accuracy": grown[Path(cfg.synthetic).name]}},
                                       "share_sweep": {"best": 1.0}, "verdict": "(measured)"})

    monkeypatch.setattr(gan.value, "measure_value", measured)
    return given


def test_the_journey_hands_over_the_kind_of_synthetic_images_that_helped_more(tmp_path, monkeypatch):
    # anchored images 3 points over classical augmentation in every seed, sampled ones 0.5
    measurements(monkeypatch, real=[0.80, 0.78], classical=[0.82, 0.80],
                 grown={"anchored": [0.85, 0.83], "sampled": [0.825, 0.805]})
    result = grow(settings(coloured(tmp_path / "data", 10, seed=5), tmp_path / "out"), log=quiet)
    assert result.helped and "drawn near each real training image" in result.verdict
    handed = sorted(p.name for p in (result.images / "red").iterdir())
    assert len(handed) == 10 + 8 and sum(name.startswith("gan-") and "_near" in name for name in handed) == 8
    report = result.report.read_text()
    assert "| real + classical + anchored x1 | 84.0 ± 1.4% |" in report
    assert "anchored share over real images with classical augmentation, per seed: +3.0, +3.0 points" in report
    decision = json.loads((result.out / "journey.json").read_text())["stages"]["hand over"]
    assert decision["over"] == "real images with classical augmentation"
    assert decision["gains"] == pytest.approx([3.0, 3.0])


def test_synthetic_images_must_beat_real_images_alone_where_classical_augmentation_hurts(tmp_path, monkeypatch):
    # 5 points over classical augmentation, which itself lost 10: the user's own folder is still better
    measurements(monkeypatch, real=[0.90, 0.88], classical=[0.80, 0.78],
                 grown={"anchored": [0.85, 0.83], "sampled": [0.85, 0.83]})
    data = coloured(tmp_path / "data", 10, seed=5)
    result = grow(settings(data, tmp_path / "out"), log=quiet)
    assert not result.helped and result.images.resolve() == data.resolve()
    assert "-5.0 points over real images alone" in result.verdict


def test_a_tie_between_real_images_and_classical_augmentation_hands_over_the_real_images(tmp_path, monkeypatch):
    # the same mean accuracy, 0.95, whose float sums differ in their last bit
    classical = [0.9333333333333333, 0.95, 0.9666666666666667]
    measurements(monkeypatch, real=[0.95, 0.95, 0.95], classical=classical,
                 grown={"anchored": classical, "sampled": classical})
    data = coloured(tmp_path / "data", 10, seed=5)
    result = grow(settings(data, tmp_path / "out", seeds=3), log=quiet)
    assert not result.helped and result.images.resolve() == data.resolve()
    assert "+0.0 points over real images alone" in result.verdict and "(+0.0 points)" in result.verdict


def test_the_classical_augmentation_chosen_is_the_one_measured_and_handed_over(tmp_path, monkeypatch):
    given = measurements(monkeypatch, real=[0.80, 0.78], classical=[0.82, 0.80],
                         grown={"anchored": [0.82, 0.80], "sampled": [0.82, 0.80]})
    result = grow(settings(coloured(tmp_path / "data", 10, seed=5), tmp_path / "out", ops="rotate,blur"), log=quiet)
    assert not result.helped and result.images.name == "classical"
    assert len(given) == 3 and {cfg.ops for cfg in given} == {"rotate,blur"}
    with open(result.images / "manifest.csv", newline="") as manifest:
        applied = {op for row in csv.DictReader(manifest) for op in re.findall(r"(\w+)\(", row["ops"])}
    assert applied and applied <= {"rotate", "blur"}
    assert "--ops rotate,blur" in result.report.read_text()
