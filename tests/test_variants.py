import csv

import numpy as np
import pytest
from PIL import Image

import gan.variants as variants_module
from helpers import fill_the_disk_after, write_images
from gan.command_config import VariantsConfig
from gan.errors import GanError
from gan.variants import export_variants


def run(data, out, **settings):
    return export_variants(VariantsConfig(data=str(data), out=str(out), workers=1, **settings), log=lambda _: None)


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


def test_a_float_tiff_holding_nan_is_skipped_not_made_black(tmp_path):
    data = tmp_path / "data"
    write_images(data, 1)
    values = np.full((8, 8), 0.5, dtype=np.float32)
    values[0, 0] = np.nan
    Image.fromarray(values, mode="F").save(data / "nan.tif")
    result = run(data, tmp_path / "out", per_image=1)
    assert [f.name for f in result.files] == ["img000_aug00.png"]
    assert result.skipped == [("nan.tif", "holds 1 non-finite pixel values (NaN or infinity)")]


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
    ({"per_image": 0}, "--per-image must be in \\[1, 1000000\\]"),
    ({"ops": "rotate,warp"}, "--ops: unknown operation 'warp'"),
    ({"strength": 0}, "--strength must be above 0"),
])
def test_bad_settings_name_the_flag(flat_folder, tmp_path, settings, message):
    with pytest.raises(GanError, match=message):
        run(flat_folder, tmp_path / "out", **settings)


def test_a_full_disk_lists_every_variant_written_and_overwrite_removes_them(class_folder, tmp_path, monkeypatch):
    out = tmp_path / "out"
    written = fill_the_disk_after(5, variants_module, monkeypatch)  # the third source's second variant fails
    with pytest.raises(GanError) as error:
        run(class_folder, out, per_image=2)
    assert str(error.value) == (
        f"cannot write {out / 'cats' / 'img002_aug01.png'} (No space left on device): 4 of 22 variants were written, "
        f"and {out / 'manifest.csv'} lists them. Free some space (or choose another --out), then run the same command "
        f"with --overwrite")
    listed = sorted(row["file"] for row in csv.DictReader((out / "manifest.csv").open()))
    assert listed == sorted(f.relative_to(out).as_posix() for f in written[:4])  # the lone variant was removed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == listed
    assert not (out / ".manifest-journal.csv").exists()
    monkeypatch.undo()
    (out / "cats" / "mine.png").write_bytes(b"the user's")
    write_images(tmp_path / "few", 1)
    result = run(tmp_path / "few", out, per_image=1, overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "cats", "cats/mine.png", "img000_aug00.png", "manifest.csv"]  # dogs/ held only the old variants
    assert [f.name for f in result.files] == ["img000_aug00.png"]


def test_a_class_folder_named_like_the_manifest_is_refused_before_any_work(tmp_path):
    write_images(tmp_path / "data" / "manifest.csv", 1)
    write_images(tmp_path / "data" / "cats", 1)
    with pytest.raises(GanError) as error:
        run(tmp_path / "data", tmp_path / "out")
    assert str(error.value) == (
        f"class 'manifest.csv' would be written to the folder {tmp_path / 'out' / 'manifest.csv'}, where the export's "
        f"manifest.csv goes: rename that folder in {tmp_path / 'data'}")
    assert not (tmp_path / "out").exists()


def test_a_per_image_count_past_a_million_variants_in_all_is_refused_before_any_work(class_folder, tmp_path):
    with pytest.raises(GanError, match=r"^--per-image 100000 makes 1,100,000 variants of 11 images, more than the "
                                       r"1,000,000 one export makes: lower it$"):
        run(class_folder, tmp_path / "out", per_image=100_000)
    assert not (tmp_path / "out").exists()
