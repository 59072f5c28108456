"""gan sample --near: variants anchored to each real image, filed under its source's class."""

import csv

import pytest

from helpers import write_images
from gan.cli import main
from gan.command_config import SampleConfig
from gan.errors import GanError
from gan.sample import export


def test_every_variant_keeps_its_source_class_and_names_its_source(conditional_run, tmp_path):
    near = tmp_path / "near"
    write_images(near / "cats", 2, seed=5)
    write_images(near / "dogs", 3, seed=6)
    result = export(SampleConfig(run=str(conditional_run), near=str(near), per_image=2, out=str(tmp_path / "o")),
                    log=lambda _: None)
    with open(result.manifest, newline="") as listing:
        rows = list(csv.DictReader(listing))
    assert len(rows) == len(result.files) == 10 and result.planned == 10
    for row in rows:
        assert row["file"].split("/")[0] == row["source"].split("/")[0] == row["class"]  # the source's class
        assert row["file"].startswith(row["source"].rsplit(".", 1)[0] + "_near")
        assert float(row["distance"]) >= 0
    assert sorted(p.parent.name for p in result.files) == ["cats"] * 4 + ["dogs"] * 6


def test_a_near_folder_with_a_class_the_run_never_saw_is_refused(conditional_run, tmp_path):
    write_images(tmp_path / "near" / "birds", 2)
    with pytest.raises(GanError, match=r"--near .* has folders the run was not trained on \(birds\)"):
        export(SampleConfig(run=str(conditional_run), near=str(tmp_path / "near"), out=str(tmp_path / "o")),
               log=lambda _: None)
    assert not (tmp_path / "o").exists()


def test_near_and_another_count_are_refused(conditional_run, tmp_path, capsys):
    assert main(["sample", "--run", str(conditional_run), "--near", str(tmp_path), "--per-class", "2", "--out",
                 str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.startswith("error: --near and --per-class both say how many images to export")
