import json
import shutil

import pytest
from PIL import Image

from helpers import coloured, write_images
from gan.cli import main
from gan.command_config import ValueConfig
from gan.errors import GanError
from gan.value import measure_value
from gan.value_report import BOTH, CLASSICAL, ONLY, REAL, SYNTHETIC

@pytest.fixture
def folders(tmp_path):
    return {name: str(coloured(tmp_path / name, count, seed))
            for name, count, seed in (("train", 4, 0), ("test", 6, 1), ("synthetic", 8, 2))}


def settings(folders, out, **extra) -> ValueConfig:
    values = dict(train=folders["train"], test=folders["test"], synthetic=folders["synthetic"], classical=True,
                  out=str(out), seeds=2, epochs=2, resolution=16, batch_size=4, device="cpu", synthetic_ratio="1")
    return ValueConfig(**{**values, **extra})


def test_the_report_compares_five_configurations_over_seeds(folders, tmp_path):
    result = measure_value(settings(folders, tmp_path / "report", synthetic_ratio="0.5"), log=lambda _: None)
    report = json.loads(result.json.read_text())
    assert list(report["conditions"]) == [REAL, CLASSICAL, SYNTHETIC, BOTH, ONLY]
    for condition in report["conditions"].values():
        assert len(condition["accuracy"]) == 2 and set(condition["per_class"]) == {"red", "blue"}
        assert 0 <= condition["mean"] <= 1 and condition["std"] >= 0
    assert report["synthetic_used"] == 4 and report["synthetic_ratio"] == 0.5  # 0.5 per real image, of 16 available
    assert (report["train_images"], report["test_images"], report["steps"]) == (8, 12, 4)
    assert report["verdict"].startswith("synthetic images ") and "classical augmentation" in report["verdict"]
    assert report["share_sweep"] is None  # one share: nothing to choose between
    diagnosis = report["diagnosis"]
    assert diagnosis["judged_by"] == CLASSICAL and set(diagnosis["label_agreement"]["per_class"]) == {"red", "blue"}
    assert 0 <= diagnosis["label_agreement"]["mean"] <= 1 and 0 <= diagnosis["recall"] <= 1
    assert 0 <= diagnosis["copy_rate"] <= 1
    markdown = result.markdown.read_text()
    assert "| real + classical + synthetic |" in markdown and "![test accuracy by configuration](accuracy.png)" in markdown
    assert Image.open(result.chart).size[0] > 400


def test_a_seed_repeats_the_figures(folders, tmp_path):
    first = measure_value(settings(folders, tmp_path / "a"), log=lambda _: None).report
    second = measure_value(settings(folders, tmp_path / "b"), log=lambda _: None).report
    assert {k: v["accuracy"] for k, v in first["conditions"].items()} == \
        {k: v["accuracy"] for k, v in second["conditions"].items()}


def test_only_the_configurations_asked_for_are_trained(folders, tmp_path):
    cfg = settings(folders, tmp_path / "r", seeds=1)
    cfg.synthetic, cfg.classical = "", False
    report = measure_value(cfg, log=lambda _: None).report
    assert list(report["conditions"]) == [REAL] and report["verdict"].startswith("real images alone")


def test_cache_dir_keeps_the_decoded_images_out_of_the_users_cache(folders, tmp_path):
    cfg = settings(folders, tmp_path / "r", seeds=1, synthetic="", classical=False, cache_dir=str(tmp_path / "mine"))
    measure_value(cfg, log=lambda _: None)
    assert len(list((tmp_path / "mine").glob("*.pt"))) == 2  # --train and --test
    assert not (tmp_path / "xdg-cache").exists()


def test_a_re_encoded_copy_of_a_test_image_is_caught_too(folders, tmp_path):
    some_test_image = next((tmp_path / "test" / "blue").iterdir())
    Image.open(some_test_image).save(tmp_path / "train" / "blue" / "resaved.png", compress_level=1)  # other bytes
    assert (tmp_path / "train" / "blue" / "resaved.png").read_bytes() != some_test_image.read_bytes()
    with pytest.raises(GanError, match="1 images in --test are also in --train"):
        measure_value(settings(folders, tmp_path / "r"), log=lambda _: None)


@pytest.mark.parametrize("quality", [100, 75])
def test_a_jpeg_copy_of_a_test_image_under_another_class_is_caught(folders, tmp_path, quality):
    [photo] = write_images(tmp_path / "test" / "blue", 1, size=(48, 48), suffix=".jpg")  # smooth, as photos are
    Image.open(photo).save(tmp_path / "train" / "red" / "other.jpg", quality=quality)
    with pytest.raises(GanError, match=r"1 images in --test are also in --train, or near-copies of its images "
                                       r"\(e.g. .*blue/img000.jpg = .*red/other.jpg\)"):
        measure_value(settings(folders, tmp_path / "r"), log=lambda _: None)


def test_the_report_never_lands_inside_an_input_folder(folders, tmp_path):
    with pytest.raises(GanError, match="--out .* is inside --train"):
        measure_value(settings(folders, tmp_path / "train" / "report"), log=lambda _: None)
    assert not (tmp_path / "train" / "report").exists()


def test_synthetic_images_are_mixed_in_per_class_and_every_batch_is_full(folders, tmp_path, monkeypatch):
    import gan.value as value_module

    seen = []
    real_train = value_module.train_classifier

    def recording(data, *args, **kwargs):
        seen.append(data.labels.bincount(minlength=2).tolist())
        return real_train(data, *args, **kwargs)

    monkeypatch.setattr(value_module, "train_classifier", recording)
    lines = []
    measure_value(settings(folders, tmp_path / "r", seeds=1, classical=False, synthetic_ratio="3"), log=lines.append)
    # ratio 3 asks for 12 a class; the 8 there are are all used; then the 8 alone (synthetic only)
    assert seen == [[4, 4], [4 + 8, 4 + 8], [8, 8]]
    assert sum("asks for 12 synthetic red images" in line for line in lines) == 1


def test_a_test_set_that_overlaps_training_or_synthetic_images_is_refused(folders, tmp_path):
    some_test_image = next((tmp_path / "test" / "red").iterdir())
    shutil.copy(some_test_image, tmp_path / "train" / "red" / "renamed.png")  # same bytes, another name
    with pytest.raises(GanError, match=r"1 images in --test are also in --train, or near-copies of its images \(e.g. "
                                       r".*red/.*.png = .*renamed.png\)"):
        measure_value(settings(folders, tmp_path / "r"), log=lambda _: None)
    (tmp_path / "train" / "red" / "renamed.png").unlink()
    shutil.copy(some_test_image, tmp_path / "synthetic" / "blue" / "copy.png")
    with pytest.raises(GanError, match="1 images in --test are also in --synthetic"):
        measure_value(settings(folders, tmp_path / "r"), log=lambda _: None)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_classes_must_match_by_name(folders, tmp_path):
    shutil.move(str(tmp_path / "test" / "blue"), str(tmp_path / "test" / "green"))
    with pytest.raises(GanError, match=r"--test has class folders that --train does not have \(green\)"):
        measure_value(settings(folders, tmp_path / "r"), log=lambda _: None)
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in (tmp_path / "train" / "red").iterdir():
        shutil.copy(image, flat / image.name)
    cfg = settings(folders, tmp_path / "r")
    cfg.train = str(flat)
    with pytest.raises(GanError, match="flat has no class subfolders: gan value needs labelled images"):
        measure_value(cfg, log=lambda _: None)
    cfg.train = str(tmp_path / "one-class")
    shutil.copytree(tmp_path / "train" / "red", tmp_path / "one-class" / "red")
    with pytest.raises(GanError, match=r"has one class folder \(red\): a classifier needs two or more"):
        measure_value(cfg, log=lambda _: None)


def test_cli_prints_the_verdict_and_where_the_report_is(folders, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["value", "--train", folders["train"], "--test", folders["test"], "--out", str(out), "--seeds", "1",
                 "--epochs", "1", "--resolution", "16", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "real images alone:" in printed and f"report: {out / 'report.md'}" in printed
    assert main(["value", "--train", folders["train"], "--test", folders["test"], "--out", str(out)]) == 1
    assert "already holds" in capsys.readouterr().err


@pytest.mark.parametrize("synthetic_are", ["right", "wrong"])
def test_the_share_sweep_picks_the_share_that_helps_most(synthetic_are, tmp_path):
    # The classifier learns what most of its training images say, and 3 synthetic images per real one outvote the
    # real ones: right where the real images' colours say the opposite of the test images' (the largest share is
    # best), wrong where the synthetic images are the mislabelled ones (the smallest is).
    coloured(tmp_path / "test", 8, 1)
    coloured(tmp_path / "train", 8, 0, swapped=synthetic_are == "right")
    coloured(tmp_path / "synthetic", 24, 2, swapped=synthetic_are == "wrong")
    folders = {name: str(tmp_path / name) for name in ("train", "test", "synthetic")}
    cfg = settings(folders, tmp_path / "r", classical=False, synthetic_ratio="3,0.25", epochs=10)
    result = measure_value(cfg, log=lambda _: None)
    report = result.report
    assert list(report["conditions"]) == [REAL, "real + synthetic x0.25", "real + synthetic x3", ONLY]
    sweep = report["share_sweep"]
    best, worst = ("3", "0.25") if synthetic_are == "right" else ("0.25", "3")
    assert sweep["best"] == float(best) and sweep["against"] == "over real images alone"
    assert sweep["gains"][best]["mean"] > sweep["gains"][worst]["mean"] + 25  # points, paired by seed
    assert report["verdict"].startswith(f"synthetic images ({best} per real image) ")
    assert report["verdict"].endswith(f"; {best} per real image did best of the 2 shares measured")
    assert set(report["gains"]) == {f"synthetic images ({share} per real image) over real images alone"
                                    for share in ("0.25", "3")} | {"synthetic images alone instead of the real ones"}
    markdown = result.markdown.read_text()
    assert f"| **{best}** | **{sweep['gains'][best]['mean']:+.1f} ± " in markdown
    assert f"`gan sample --per-real {best}`" in markdown and "optimistic estimate" in markdown


def test_conditions_trains_only_the_configurations_named(folders, tmp_path):
    report = measure_value(settings(folders, tmp_path / "r", conditions="both,classical", synthetic_ratio="0.5,1"),
                           log=lambda _: None).report
    assert list(report["conditions"]) == [CLASSICAL, f"{BOTH} x0.5", f"{BOTH} x1"]
    assert report["share_sweep"]["against"] == "over classical augmentation" and report["diagnosis"]["judged_by"] == \
        CLASSICAL
    assert list(report["gains"]) == ["synthetic images (0.5 per real image) over classical augmentation",
                                     "synthetic images (1 per real image) over classical augmentation"]


def test_every_condition_name_has_a_configuration():
    from gan.command_config import VALUE_CONDITIONS
    from gan.value import KINDS

    assert list(KINDS) == list(VALUE_CONDITIONS)


@pytest.mark.parametrize("flags, message", [
    (["--classical", "--synthetic", "s", "--conditions", "both"], "--conditions both is measured against classical: add classical to --conditions"),
    (["--conditions", "real,extra"], "--conditions: unknown configuration 'extra': choose from real, classical"),
    (["--conditions", "real,classical"], "--conditions classical needs --classical"),
    (["--classical", "--conditions", "real,only"], "--conditions only needs --synthetic"),
])
def test_bad_conditions_are_one_clear_line(flags, message, capsys):
    assert main(["value", "--train", "a", "--test", "b", "--out", "c", *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("ratio, message", [
    ("", "--synthetic-ratio is empty: give synthetic images per real one, e.g. 0.5, or several"),
    ("0.1,half", "--synthetic-ratio: 'half' is not a number: give synthetic images per real one"),
    ("0.5,nan", "--synthetic-ratio must be above 0 and at most 100, got nan"),
    ("0,1", "--synthetic-ratio must be above 0 and at most 100, got 0"),
    ("101", "--synthetic-ratio must be above 0 and at most 100, got 101"),
])
def test_a_bad_synthetic_ratio_is_one_clear_line(ratio, message, capsys):
    assert main(["value", "--train", "a", "--test", "b", "--out", "c", "--synthetic-ratio", ratio]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
