import csv

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config, write_images
from gan.checkpoint import load_checkpoint, save_checkpoint
from gan.config import SampleConfig
from gan.errors import GanError
from gan.sample import export
from gan.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("sample")
    write_images(base / "flowers", 8)
    return train(tiny_config(base / "flowers", base / "runs", steps=2), log=lambda _: None).run_dir


def pixels(path):
    return np.asarray(Image.open(path), dtype=np.int16)


def test_export_writes_seeded_files_and_a_manifest(run_dir, tmp_path):
    result = export(SampleConfig(run=str(run_dir), count=5, out=str(tmp_path / "out"), seed=10), log=lambda _: None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.csv", "seed000010.png", "seed000011.png", "seed000012.png", "seed000013.png", "seed000014.png",
    ]
    rows = list(csv.DictReader(result.manifest.open()))
    assert [r["seed"] for r in rows] == ["10", "11", "12", "13", "14"]
    assert rows[0]["file"] == "seed000010.png" and rows[0]["class"] == "flowers"  # one-class data: labelled
    assert rows[0]["step"] == "2" and rows[0]["checkpoint"].endswith("checkpoint-0000002.pt")
    image = Image.open(tmp_path / "out" / "seed000010.png")
    assert image.size == (16, 16) and image.mode == "RGB"


def test_each_image_depends_only_on_its_seed(run_dir, tmp_path):
    export(SampleConfig(run=str(run_dir), count=6, out=str(tmp_path / "a"), batch_size=1), log=lambda _: None)
    export(SampleConfig(run=str(run_dir), count=4, out=str(tmp_path / "b"), batch_size=4, seed=2), log=lambda _: None)
    for seed in (2, 3, 4, 5):
        a, b = pixels(tmp_path / "a" / f"seed{seed:06d}.png"), pixels(tmp_path / "b" / f"seed{seed:06d}.png")
        assert np.abs(a - b).max() <= 1  # at most float rounding between batch sizes
    assert np.abs(pixels(tmp_path / "a" / "seed000000.png") - pixels(tmp_path / "a" / "seed000001.png")).max() > 1


def test_a_folder_with_files_is_refused_unless_overwrite(run_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(GanError, match=r"already holds 1 entries \(e\.g\. holiday\.jpg\).*--overwrite"):
        export(SampleConfig(run=str(run_dir), count=2, out=str(out)), log=lambda _: None)
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]
    export(SampleConfig(run=str(run_dir), count=2, out=str(out), overwrite=True), log=lambda _: None)
    assert (out / "holiday.jpg").read_bytes() == b"precious"  # --overwrite replaces only same-named files
    assert (out / "seed000001.png").exists()


def test_jpg_format_and_preview_grid(run_dir, tmp_path):
    grid = tmp_path / "preview" / "grid.png"
    export(SampleConfig(checkpoint=str(next(run_dir.glob("checkpoint-*.pt"))), count=3, out=str(tmp_path / "j"),
                        format="jpg", grid=str(grid)), log=lambda _: None)
    assert Image.open(tmp_path / "j" / "seed000000.jpg").format == "JPEG"
    assert Image.open(grid).size == (2 + 3 * 18, 2 + 18)  # 3 images of 16 px in one row


def test_grayscale_models_export_grayscale_images(tmp_path):
    write_images(tmp_path / "gray", 4, mode="L")
    run = train(tiny_config(tmp_path / "gray", tmp_path / "runs", steps=1), log=lambda _: None).run_dir
    export(SampleConfig(run=str(run), count=1, out=str(tmp_path / "o")), log=lambda _: None)
    assert Image.open(tmp_path / "o" / "seed000000.png").mode == "L"


def test_weights_that_do_not_fit_the_config_are_refused(run_dir, tmp_path):
    state = load_checkpoint(str(run_dir)).state
    state["G_ema"] = {"net.0.weight": torch.zeros(1)}
    save_checkpoint(tmp_path, state, keep=1)
    with pytest.raises(GanError, match="generator weights do not match its own config"):
        export(SampleConfig(run=str(tmp_path), count=1, out=str(tmp_path / "o")), log=lambda _: None)


def test_grid_path_that_is_a_folder_is_refused_before_writing_anything(run_dir, tmp_path):
    with pytest.raises(GanError, match="--grid .* is a folder"):
        export(SampleConfig(run=str(run_dir), count=2, out=str(tmp_path / "o"), grid=str(tmp_path)), log=lambda _: None)
    assert not (tmp_path / "o").exists()
