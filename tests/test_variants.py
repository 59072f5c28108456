import csv

import pytest
from PIL import Image

from conftest import write_images
from gan.config import AugmentConfig
from gan.errors import GanError
from gan.variants import export_variants


def run(data, out, **settings):
    return export_variants(AugmentConfig(data=str(data), out=str(out), workers=1, **settings), log=lambda _: None)


def test_variants_mirror_the_class_layout_with_a_manifest(class_folder, tmp_path):
    result = run(class_folder, tmp_path / "out", per_image=2)
    assert len(result.files) == 2 * 11 and not result.skipped
    assert sorted(p.name for p in (tmp_path / "out" / "cats").iterdir())[:2] == ["img000_aug00.png", "img000_aug01.png"]
    rows = list(csv.DictReader(result.manifest.open()))
    first = rows[0]
    assert (first["file"], first["source"], first["class"], first["seed"]) == (
        "cats/img000_aug00.png", "cats/img000.png", "cats", "0")
    assert all(row["ops"] for row in rows) and rows[3]["seed"] == "3"
    assert Image.open(result.files[0]).size == Image.open(class_folder / "cats" / "img000.png").size


def test_the_same_seed_makes_the_same_files(flat_folder, tmp_path):
    a, b = run(flat_folder, tmp_path / "a", seed=3), run(flat_folder, tmp_path / "b", seed=3)
    c = run(flat_folder, tmp_path / "c", seed=4)
    assert [f.read_bytes() for f in a.files] == [f.read_bytes() for f in b.files]
    assert [f.read_bytes() for f in a.files] != [f.read_bytes() for f in c.files]
    assert a.manifest.read_text() == b.manifest.read_text()


def test_formats_modes_and_bad_files(tmp_path):
    data = tmp_path / "data"
    write_images(data, 1, suffix=".jpg")
    write_images(data, 1, mode="L", seed=1)  # img000.png next to img000.jpg: names must not collide
    (data / "broken.png").write_bytes(b"not an image")
    result = run(data, tmp_path / "out", per_image=1)
    assert sorted(f.name for f in result.files) == ["img000_jpg_aug00.jpg", "img000_png_aug00.png"]
    assert Image.open(tmp_path / "out" / "img000_png_aug00.png").mode == "L"  # grayscale stays grayscale
    assert result.skipped == [("broken.png", "not an image (or not one of PNG, JPEG, WebP, BMP, GIF, TIFF)")]


def test_output_folders_that_would_lose_or_mix_files_are_refused(class_folder, tmp_path):
    with pytest.raises(GanError, match="is inside --data"):
        run(class_folder, class_folder / "augmented")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    with pytest.raises(GanError, match="already holds 1 entries"):
        run(class_folder, tmp_path / "full")
    run(class_folder, tmp_path / "full", overwrite=True)
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("settings, message", [
    ({"per_image": 0}, "--per-image must be positive"),
    ({"ops": "rotate,warp"}, "--ops: unknown operation 'warp'"),
    ({"strength": 0}, "--strength must be above 0"),
])
def test_bad_settings_name_the_flag(flat_folder, tmp_path, settings, message):
    with pytest.raises(GanError, match=message):
        run(flat_folder, tmp_path / "out", **settings)
