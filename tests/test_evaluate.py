import csv
import errno
import json
import os
import shutil

import pytest
import torch
from PIL import Image

import gan.evaluate as evaluate_module
from helpers import stats_records, tiny_config, write_images
from gan.checkpoint import load_checkpoint
from gan.command_config import EvalConfig
from gan.copies import copy_filter
from gan.data import load_dataset
from gan.errors import GanError
from gan.evaluate import evaluate_run, format_report
from gan.features import RandomFeatures
from gan.pixels import to_signed
from gan.train import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A conditional run evaluated at steps 2 and 4 (KID picks best.pt)."""
    base = tmp_path_factory.mktemp("evaluate")
    write_images(base / "pets" / "cats", 6, seed=1)
    write_images(base / "pets" / "dogs", 5, seed=2)
    cfg = tiny_config(base / "pets", base / "runs", steps=4)
    cfg.train.eval_every = 2
    return train(cfg, log=lambda _: None).run_dir


def trained_config(run):
    return load_checkpoint(str(run)).saved_config()


def evaluation(run, **settings) -> EvalConfig:
    cfg = EvalConfig(run=str(run), device="cpu")  # measured as training did: random features, 16 samples
    for name, value in settings.items():
        setattr(cfg, name, value)
    return cfg


def test_gan_eval_reproduces_the_kid_training_logged_for_best(run):
    logged = {s["step"]: s["Metrics/KID"] for s in stats_records(run, "Metrics/KID")}
    assert sorted(logged) == [2, 4]
    result = evaluate_run(evaluation(run), log=lambda _: None)
    report = json.loads(result.json.read_text())
    best_step = min(logged, key=logged.get)
    assert report["checkpoint"].endswith("best.pt") and report["step"] == best_step
    assert report["kid"] == pytest.approx(logged[best_step], rel=1e-9)  # same seeds, same features, same subsets
    assert report["features"] == "random" and report["comparable_to_published_fid"] is False
    assert (report["num_real"], report["num_generated"]) == (11, 16)
    assert set(report["classes"]) == {"cats", "dogs"}
    assert {"fid", "kid", "kid_std", "precision", "recall"} <= report["classes"]["cats"].keys()
    assert result.json.name == f"eval-{best_step:07d}.json"


def test_truncation_is_measured_and_reported(run, tmp_path):
    copy = shutil.copytree(run, tmp_path / run.name)  # its eval files stay out of the shared run
    plain = evaluate_run(evaluation(copy, checkpoint="last"), log=lambda _: None).report
    cut = evaluate_run(evaluation(copy, checkpoint="last", truncation=0.5), log=lambda _: None).report
    assert (plain["truncation"], cut["truncation"]) == (0.0, 0.5) and plain["kid"] != cut["kid"]


def test_a_second_evaluation_never_replaces_the_first(run):
    first = evaluate_run(evaluation(run, checkpoint="last"), log=lambda _: None).json
    second = evaluate_run(evaluation(run, checkpoint="last", count=20), log=lambda _: None).json
    assert (first.name, second.name) == ("eval-0000004.json", "eval-0000004-2.json")
    assert json.loads(first.read_text())["num_generated"] == 16


def test_held_out_real_images(run, tmp_path):
    write_images(tmp_path / "held" / "cats", 4, seed=7)
    write_images(tmp_path / "held" / "birds", 3, seed=8)
    lines = []
    report = evaluate_run(evaluation(run, real=str(tmp_path / "held")), log=lines.append).report
    assert report["num_real"] == 7 and report["real"] == str((tmp_path / "held").resolve())
    assert set(report["classes"]) == {"cats"}  # birds are not a class of the run; dogs have no real images here
    assert f"warning: --real {tmp_path / 'held'} has class folders the run was not trained on (birds): their 3 " \
           f"images count in the overall metrics, and in no class's" in lines
    write_images(tmp_path / "flat", 4, seed=9)
    evaluate_run(evaluation(run, real=str(tmp_path / "flat")), log=lines.append)
    assert any("has none of the run's class folders (cats, dogs)" in line for line in lines)


def test_nearest_writes_the_copy_rate_a_pairs_grid_and_every_sample_nearest(run):
    result = evaluate_run(evaluation(run, nearest=True), log=lambda _: None)
    memo = result.report["memorization"]
    assert {"copy_rate", "copies", "real_copy_rate", "copy_fraction"} <= memo.keys() and 0 <= memo["copy_rate"] <= 1
    rows = list(csv.DictReader(result.nearest_csv.open()))
    assert len(rows) == 16 and rows[0]["nearest_by_features"].startswith(("cats/", "dogs/"))
    assert Image.open(result.grid).size == (2 + 8 * 18, 2 + 4 * 18)  # 16 pairs, 4 a row
    assert "copies:" in format_report(result.report)


def test_a_planted_training_image_is_reported_as_a_copy(run, monkeypatch):
    train_images = load_dataset(trained_config(run).data, lambda _: None).images
    real_samples = evaluate_module.Evaluator.samples

    def samples_with_a_copy(self, G):
        samples = real_samples(self, G)
        samples.images[3] = train_images[5]
        return samples

    monkeypatch.setattr(evaluate_module.Evaluator, "samples", samples_with_a_copy)
    result = evaluate_run(evaluation(run, nearest=True), log=lambda _: None)
    rows = list(csv.DictReader(result.nearest_csv.open()))
    assert rows[3]["copy"] == "1" and float(rows[3]["feature_distance"]) < 1e-4
    assert result.report["memorization"]["copies"] >= 1


def test_copy_filter_flags_exactly_the_planted_images(run):
    dataset = load_dataset(trained_config(run).data, lambda _: None)
    is_copy = copy_filter(RandomFeatures(), dataset, CPU)
    batch = torch.rand(6, 3, 16, 16) * 2 - 1
    batch[[1, 4]] = to_signed(dataset.images[[0, 9]])
    assert is_copy(batch).tolist() == [False, True, False, False, True, False]


def test_eval_errors_name_the_fix(run, tmp_path):
    no_best = tmp_path / "run"
    no_best.mkdir()
    with pytest.raises(GanError, match="has no best.pt"):
        evaluate_run(evaluation(no_best, checkpoint="best"), log=lambda _: None)
    with pytest.raises(GanError, match="--real .*missing is not a folder"):
        evaluate_run(evaluation(run, real=str(tmp_path / "missing")), log=lambda _: None)


def test_training_images_that_moved_are_named(run, tmp_path):
    moved = tmp_path / "moved"
    (run.parent.parent / "pets").rename(moved)
    try:
        with pytest.raises(GanError, match="evaluating without --real needs the run's training images, but .*pets"):
            evaluate_run(evaluation(run), log=lambda _: None)
        write_images(tmp_path / "held", 3)
        with pytest.raises(GanError, match="--nearest needs the run's training images"):
            evaluate_run(evaluation(run, real=str(tmp_path / "held"), nearest=True), log=lambda _: None)
        assert evaluate_run(evaluation(run, real=str(tmp_path / "held")), log=lambda _: None).report["num_real"] == 3
    finally:
        moved.rename(run.parent.parent / "pets")



def test_real_features_wait_for_the_first_evaluation_and_are_taken_once(run, monkeypatch):
    # Training starts at once however many real images there are (Inception on a CPU takes minutes for 5,000).
    dataset = load_dataset(trained_config(run).data, lambda _: None)
    embedded = []
    real_embed = evaluate_module.embed
    monkeypatch.setattr(evaluate_module, "embed", lambda space, images, *a: embedded.append(len(images)) or
                        real_embed(space, images, *a))
    evaluator = evaluate_module.Evaluator(RandomFeatures(), dataset, dataset.class_names, True, 8, CPU)
    assert embedded == []
    G = evaluate_module.load_generator(load_checkpoint(str(run)), CPU)
    first, second = evaluator.evaluate(G), evaluator.evaluate(G)
    assert embedded == [8, 8, 8]  # samples, then the reals (once: a subset as large as the samples), the next samples
    assert first["kid"] == second["kid"]


def test_a_real_set_larger_than_the_samples_is_compared_through_a_class_balanced_subset_of_their_size():
    from gan.data import ImageDataset

    labels = torch.tensor([0] * 30 + [1] * 10)
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 3, 16, 16).contiguous()
    dataset = ImageDataset(images, labels, ["cats", "dogs"], [f"{i}.png" for i in range(40)])

    def evaluator(count, seed=0):
        return evaluate_module.Evaluator(RandomFeatures(), dataset, dataset.class_names, True, count, CPU, seed=seed)

    small = evaluator(8)
    assert len(small.real_images) == 8 and small.real_labels.tolist() == [0] * 6 + [1] * 2  # each class's share
    assert torch.equal(small.real_images, evaluator(8).real_images)  # the same subset every time
    assert not torch.equal(small.real_images, evaluator(8, seed=1).real_images)
    assert small.identity.endswith(", 8 of 40 real images")  # a best.pt scored on all of them is not compared
    assert len(evaluator(40).real_images) == 40 and "real images" not in evaluator(40).identity


def test_an_evaluation_that_cannot_be_saved_still_shows_its_scores(run, monkeypatch):
    def read_only(path, text):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(evaluate_module, "write_text", read_only)
    lines = []
    with pytest.raises(GanError) as error:
        evaluate_run(evaluation(run), log=lines.append)
    assert "KID x1e3" in lines[-1] and "all" in lines[-1]  # the table, before the error
    assert str(error.value).startswith(f"cannot write {run}/eval-")
    assert str(error.value).endswith(f"(Read-only file system), so the scores above are not kept. Make {run} "
                                     f"writable to keep them, or copy the run somewhere writable")
