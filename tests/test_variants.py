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
    assert sorted(f.name for f in result.files) == ["img000-2_aug00.png", "img000_aug00.jpg"]
    assert Image.open(tmp_path / "out" / "img000-2_aug00.png").mode == "L"  # grayscale stays grayscale
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


def test_thin_tiny_and_same_named_images_all_get_their_variants(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, size in (("thin.png", (1, 40)), ("wide.png", (500, 5)), ("dot.png", (1, 1)), ("same.png", (8, 8)),
                       ("same.PNG", (9, 9))):
        Image.new("RGB", size, (200, 100, 50)).save(data / name, format="PNG")
    result = run(data, tmp_path / "out", per_image=3, ops="blur,rotate,crop", strength=0.01)
    assert not result.skipped and len(result.files) == 15 == len({f.name.lower() for f in result.files})
    assert all(f.exists() for f in result.files)


def test_a_folder_of_unreadable_files_is_an_error_not_an_empty_success(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.png").write_bytes(b"junk")
    with pytest.raises(GanError, match="no image in .* could be read .*nothing was written"):
        run(tmp_path / "data", tmp_path / "out")


@pytest.mark.parametrize("settings, message", [
    ({"per_image": 0}, "--per-image must be positive"),
    ({"ops": "rotate,warp"}, "--ops: unknown operation 'warp'"),
    ({"strength": 0}, "--strength must be above 0"),
])
def test_bad_settings_name_the_flag(flat_folder, tmp_path, settings, message):
    with pytest.raises(GanError, match=message):
        run(flat_folder, tmp_path / "out", **settings)
