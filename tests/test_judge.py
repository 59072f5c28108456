import csv

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import tiny_config
from gan.checkpoint import load_checkpoint
from gan.command_config import EvalConfig, SampleConfig
from gan.data import training_images
from gan.evaluate import evaluate_run, format_report
from gan.judge import JUDGE, held_out_split, run_judge, train_judge
from gan.sample import export
from gan.train import train

COLOURS = {"blue": (40, 40, 200), "red": (200, 40, 40)}  # class 0, class 1 (folders are sorted)


def quiet(_):
    pass


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step conditional run on red and blue images: its judge can tell them apart, its generator cannot."""
    base = tmp_path_factory.mktemp("judge")
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (base / "data" / name).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(base / "data" / name / f"{i}.png")
    cfg = tiny_config(base / "data", base / "runs", steps=2)
    cfg.train.eval_every = 0
    return train(cfg, log=quiet).run_dir


def painted(colour_of):
    """A stand-in for gan.generate.generate whose image for (seed, label) is the colour colour_of(seed, label)."""
    def generate(G, seeds, labels, batch_size, device, truncation=0.0):
        for start in range(0, len(seeds), batch_size):
            batch = []
            for seed, label in zip(seeds[start : start + batch_size], labels[start : start + batch_size]):
                colour = torch.tensor(COLOURS[colour_of(seed, label)], dtype=torch.float32)
                batch.append(colour.view(3, 1, 1).expand(3, 16, 16) / 127.5 - 1)
            yield torch.stack(batch)
    return generate


FAITHFUL = painted(lambda seed, label: list(COLOURS)[label])
ALWAYS_BLUE = painted(lambda seed, label: "blue")  # ignores its labels


@pytest.mark.parametrize("generator, expected", [(FAITHFUL, {"blue": 1.0, "red": 1.0}),
                                                 (ALWAYS_BLUE, {"blue": 1.0, "red": 0.0})])
def test_label_agreement_sees_a_generator_that_ignores_its_labels(run, monkeypatch, generator, expected):
    import gan.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "generate", generator)
    report = evaluate_run(EvalConfig(run=str(run), checkpoint="last", count=20), log=quiet).report
    assert report["label_agreement_classes"] == expected
    assert report["label_agreement"] == sum(expected.values()) / 2
    assert 0 <= report["judge_accuracy"] <= 1 and "held out" in report["judge"]
    table = format_report(report)
    assert "labels:" in table and ("below 90%: red" in table) == (expected["red"] == 0.0)


def test_the_export_filter_rejects_the_wrong_class_and_warns(run, tmp_path, monkeypatch):
    import gan.sample as sample_module

    monkeypatch.setattr(sample_module, "generate", ALWAYS_BLUE)
    lines = []
    result = export(SampleConfig(run=str(run), checkpoint="last", per_class=3, out=str(tmp_path / "o")), log=lines.append)
    assert sorted({f.parent.name for f in result.files}) == ["blue"] and len(result.files) == 3
    assert result.rejected_by_class == {"red": {"label": 30}}  # 3 images, 10 rounds
    assert any("warning: class red: 100% of its samples were not recognised" in line for line in lines)
    rows = list(csv.DictReader(result.manifest.open()))
    assert all(float(row["confidence"]) >= 0.5 for row in rows) and all(row["d_score"] for row in rows)


def test_a_faithful_generator_passes_and_the_filter_can_be_turned_off(run, tmp_path, monkeypatch):
    import gan.sample as sample_module

    monkeypatch.setattr(sample_module, "generate", FAITHFUL)
    kept = export(SampleConfig(run=str(run), checkpoint="last", per_class=2, out=str(tmp_path / "a")), log=quiet)
    assert kept.rejected == 0 and len(kept.files) == 4
    monkeypatch.setattr(sample_module, "generate", ALWAYS_BLUE)
    unfiltered = export(SampleConfig(run=str(run), checkpoint="last", per_class=2, label_filter=False,
                                     out=str(tmp_path / "b")), log=quiet)
    assert unfiltered.rejected == 0 and len(unfiltered.files) == 4  # the user asked for them as they come
    rows = list(csv.DictReader(unfiltered.manifest.open()))
    assert [float(r["confidence"]) < 0.5 for r in rows] == [False, False, True, True]  # still recorded


def test_rejected_samples_come_from_later_seeds_whatever_the_batch_size(run, tmp_path, monkeypatch):
    import gan.sample as sample_module

    monkeypatch.setattr(sample_module, "generate", painted(lambda seed, label: list(COLOURS)[label ^ (seed % 3 == 0)]))
    made = []
    for batch_size in (1, 3, 8):
        result = export(SampleConfig(run=str(run), checkpoint="last", per_class=3, batch_size=batch_size,
                                     out=str(tmp_path / f"b{batch_size}")), log=quiet)
        made.append([f.relative_to(result.out).as_posix() for f in result.files])
    assert sorted(made[0]) == sorted(made[1]) == sorted(made[2])
    assert all(int(name[-10:-4]) % 3 for name in made[0])  # seeds 0, 3, 6 ... were the wrong class


def test_the_judge_repeats_exactly_and_is_trained_once_per_run(run, tmp_path):
    cfg = load_checkpoint(str(run)).saved_config()
    images = training_images(cfg, "test", quiet)
    first, second = train_judge(images, cfg, torch.device("cpu")), train_judge(images, cfg, torch.device("cpu"))
    assert torch.equal(first.probabilities(images.images, torch.device("cpu")),
                       second.probabilities(images.images, torch.device("cpu")))
    lines = []
    run_judge(run, cfg, lambda: images, torch.device("cpu"), lines.append)
    assert (run / JUDGE).is_file()
    again = []
    kept = run_judge(run, cfg, lambda: pytest.fail("the kept judge needs no images"), torch.device("cpu"), again.append)
    assert again == [] and kept.held_out_images == 4  # a fifth of each class of 10


def test_held_out_split_takes_a_fifth_of_each_class_of_five_or_more():
    labels = torch.tensor([0] * 10 + [1] * 4 + [2] * 5)
    train, held = held_out_split(labels, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[held], minlength=3).tolist() == [2, 0, 1]
    assert sorted(train.tolist() + held.tolist()) == list(range(len(labels)))


def test_an_unconditional_run_reports_no_agreement(tmp_path, flat_folder):
    run_dir = train(tiny_config(flat_folder, tmp_path / "runs", steps=2), log=quiet).run_dir
    report = evaluate_run(EvalConfig(run=str(run_dir), count=8), log=quiet).report
    assert "label_agreement" not in report and "class_kid" not in report
    assert "labels" not in format_report(report) and not (run_dir / JUDGE).exists()


THREE = {"blue": (40, 40, 200), "green": (40, 200, 40), "red": (200, 40, 40)}  # classes 0, 1, 2


class PaintsEachClass(torch.nn.Module):
    """A 16-px generator of flat colours: each label's colour, or (label_blind) class 0's whatever the label."""

    z_dim = 8

    def __init__(self, label_blind: bool):
        super().__init__()
        self.label_blind = label_blind
        self.colours = torch.tensor(list(THREE.values()), dtype=torch.float32) / 127.5 - 1  # (3 classes, RGB)

    def forward(self, z, labels):
        classes = torch.zeros_like(labels) if self.label_blind else labels
        return self.colours[classes].view(-1, 3, 1, 1).expand(-1, 3, 16, 16)


@pytest.fixture(scope="module")
def three_colours(tmp_path_factory):
    """An evaluator of 30 samples against blue, green and red images, with a judge trained on them."""
    from gan.config import DataConfig, MetricsConfig, RunConfig
    from gan.data import load_dataset
    from gan.evaluate import Evaluator
    from gan.features import load_feature_space

    base = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for name, colour in THREE.items():
        (base / name).mkdir()
        for i in range(10):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(base / name / f"{i}.png")
    cfg = RunConfig(data=DataConfig(path=str(base), resolution=16, workers=1, cache=False))
    dataset = load_dataset(cfg.data, quiet)
    cpu = torch.device("cpu")
    judge = train_judge(dataset, cfg, cpu)
    return Evaluator(load_feature_space(MetricsConfig("random"), cpu, quiet), dataset, dataset.class_names, True, 30,
                     cpu, judge=lambda: judge)


@pytest.mark.parametrize("label_blind", [True, False], ids=["ignores-its-labels", "follows-them"])
def test_a_generator_that_ignores_its_labels_is_caught_by_agreement_and_warned_about(three_colours, label_blind):
    from gan.judge import label_warnings

    scores = three_colours.evaluate(PaintsEachClass(label_blind))
    warnings = label_warnings(scores, "on")
    if label_blind:  # only class 0's samples show their class: agreement 1 / number of classes
        assert scores["label_agreement"] == pytest.approx(1 / 3, abs=0.05)
        assert scores["label_agreement_classes"] == {"blue": 1.0, "green": 0.0, "red": 0.0}
        assert [line.split(":")[0] for line in warnings] == ["class 'green'", "class 'red'"]
        assert warnings[0].startswith("class 'green': only 0% of its samples are recognisably green (the bar is 80%")
        assert "Fix: train with --conditional per-class" in warnings[0]
    else:
        assert scores["label_agreement"] == 1.0 and warnings == []


def test_a_class_warning_says_when_the_judge_is_too_weak_to_trust_and_suits_a_per_class_run():
    from gan.judge import label_warnings

    scores = {"label_agreement_classes": {"cats": 0.9, "dogs": 0.34, "mice": None}, "judge_accuracy": 0.62}
    [line] = label_warnings(scores, "on")
    assert line.startswith("class 'dogs': only 34% of its samples are recognisably dogs (the bar is 80%; a rough "
                           "figure: the run's judge is right on only 62% of held-out images): its labels do not hold")
    [line] = label_warnings({**scores, "judge_accuracy": None}, "per-class")
    assert "too few images to measure the run's judge" in line and "--conditional per-class" not in line
    assert "train longer or add images of that class" in line
    assert label_warnings({**scores, "judge_accuracy": 0.95}, "on")[0].count("rough") == 0
    assert label_warnings(None, "on") == label_warnings({"kid": 0.1}, "off") == []
