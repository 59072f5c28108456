"""Loading an image folder: bad files, image modes, folder errors, class layout, the decoded-image cache and parallel
decoding. Every image is tiny (16-64 px) and built here."""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from helpers import write_images
from gan.config import DataConfig
from gan.batches import RealBatches
from gan.data import ImageDataset, load_dataset
from gan.errors import GanError
from gan.folders import scan_folder
from gan.images import FORMATS, BadImage, decode

RES = 16
BIG = 80_000_000  # DataConfig's default --max-pixels


# --- helpers --------------------------------------------------------------------------------------------------------


def data_config(path: Path, tmp_path: Path, **overrides) -> DataConfig:
    """16 px, one worker, no cache unless a test asks for it; any cache lives in tmp_path."""
    cfg = DataConfig(path=str(path), resolution=RES, workers=1, cache=False, cache_dir=str(tmp_path / "cache"))
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


def load(cfg: DataConfig) -> tuple[ImageDataset, list[str]]:
    lines: list[str] = []
    dataset = load_dataset(cfg, log=lines.append)
    return dataset, lines


def decoded(path: Path, background: str = "white", max_pixels: int = BIG, resolution: int = RES):
    """(pixels, gray, upscaled) for one file."""
    return decode(str(path), resolution, background, max_pixels)


def solid(path: Path, colour, size=(20, 20), mode: str = "RGB", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)
    return path


def noise_png(path: Path, size: int = 32, seed: int = 0) -> Path:
    """A PNG of random pixels: it barely compresses, so cutting it in half cuts the pixel data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def truncated_png(path: Path) -> Path:
    data = noise_png(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A valid small PNG whose IHDR chunk is patched to claim width x height (CRC fixed, so the header is valid)."""
    data = bytearray(noise_png(path, size=8).read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC over chunk type + 13 data bytes
    path.write_bytes(bytes(data))
    return path


def assert_close(pixel, expected, tolerance: int) -> None:
    diff = np.abs(np.asarray(pixel, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.max() <= tolerance, f"{list(pixel)} is not within {tolerance} of {list(expected)}"


# --- 1. bad files are skipped, with a reason each ------------------------------------------------------------------


def test_bad_files_are_skipped_one_line_each_and_the_good_ones_load(tmp_path):
    folder = tmp_path / "mixed"
    write_images(folder, 3)
    truncated_png(folder / "truncated.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not a JPEG\n")
    png_claiming_size(folder / "huge.png", 9000, 9000)  # 81 M pixels: over the default limit, under Pillow's own

    dataset, lines = load(data_config(folder, tmp_path))

    assert lines == [
        "skipped empty.png: empty file (0 bytes)",
        "skipped huge.png: 9000x9000 is larger than the pixel limit 80000000 (raise --max-pixels)",
        f"skipped notes.jpg: not an image (or not one of {FORMATS})",
        "skipped truncated.png: truncated file",
        "3 images ready, 4 of 7 files skipped",
    ]
    assert all("\n" not in line for line in lines)
    assert dataset.files == ["img000.png", "img001.png", "img002.png"]
    assert dataset.images.shape == (3, 3, RES, RES)
    assert dataset.images.dtype == torch.uint8
    assert dataset.labels.tolist() == [0, 0, 0]


def test_decode_raises_bad_image_with_a_short_reason(tmp_path):
    with pytest.raises(BadImage, match=r"^truncated file$"):
        decoded(truncated_png(tmp_path / "cut.png"))
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(BadImage, match=r"^empty file \(0 bytes\)$"):
        decoded(tmp_path / "zero.png")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(BadImage) as error:
        decoded(tmp_path / "text.jpg")
    assert str(error.value) == "not an image (or not one of PNG, JPEG, WebP, BMP, GIF, TIFF)"


def test_patched_png_header_over_max_pixels_is_refused_before_decoding(tmp_path):
    huge = png_claiming_size(tmp_path / "huge.png", 4000, 3000)
    with Image.open(huge) as image:  # the patched header is a valid PNG header
        assert image.size == (4000, 3000)
    with pytest.raises(BadImage) as error:
        decoded(huge, max_pixels=1_000_000)
    assert str(error.value) == "4000x3000 is larger than the pixel limit 1000000 (raise --max-pixels)"


def test_small_max_pixels_skips_larger_images_and_keeps_small_ones(tmp_path):
    folder = tmp_path / "sizes"
    write_images(folder, 2, size=(24, 20))  # 480 pixels each
    solid(folder / "tiny.png", (10, 20, 30), size=(8, 8))  # 64 pixels, upscaled to 16 px

    dataset, lines = load(data_config(folder, tmp_path, max_pixels=100))

    assert lines == [
        "skipped img000.png: 24x20 is larger than the pixel limit 100 (raise --max-pixels)",
        "skipped img001.png: 24x20 is larger than the pixel limit 100 (raise --max-pixels)",
        "1 image ready, 2 of 3 files skipped, 1 smaller than 16 px were upscaled",
    ]
    assert dataset.files == ["tiny.png"]
    assert dataset.images[0, :, 8, 8].tolist() == [10, 20, 30]


def test_huge_png_header_reason_names_the_pixel_limit_and_the_flag(tmp_path):
    folder = tmp_path / "bomb"
    write_images(folder, 1)
    png_claiming_size(folder / "huge.png", 100_000, 100_000)

    dataset, lines = load(data_config(folder, tmp_path))

    assert dataset.files == ["img000.png"]
    assert lines[0] == (
        "skipped huge.png: 100000x100000 is larger than the pixel limit 80000000 (raise --max-pixels)"
    )


# --- 2. image modes and formats -------------------------------------------------------------------------------------


def test_cmyk_jpeg_gives_the_right_rgb_colours(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("RGB", (20, 20), (30, 200, 90)).convert("CMYK").save(path, quality=95)
    with Image.open(path) as image:
        assert image.mode == "CMYK"
    pixels, gray, upscaled = decoded(path)
    assert pixels.shape == (RES, RES, 3) and pixels.dtype == np.uint8
    assert_close(pixels[8, 8], (30, 200, 90), 6)
    assert (gray, upscaled) == (False, False)


@pytest.mark.parametrize("value, expected", [(32768, 128), (65535, 255), (1000, 4), (0, 0)])
def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path, value, expected):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((20, 20), value, dtype=np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    pixels, gray, _ = decoded(path)
    assert gray is True
    assert (pixels == expected).all()


def test_32_bit_integer_tiff_is_scaled_like_16_bit(tmp_path):
    path = tmp_path / "deep.tif"
    Image.fromarray(np.full((20, 20), 32768, dtype=np.int32)).save(path)
    with Image.open(path) as image:
        assert image.mode == "I"
    pixels, gray, _ = decoded(path)
    assert gray is True
    assert (pixels == 128).all()


def test_16_bit_grayscale_folder_loads_as_one_channel_mid_gray(tmp_path):
    folder = tmp_path / "xray"
    folder.mkdir()
    for i, value in enumerate((16384, 32768, 49152)):
        Image.fromarray(np.full((20, 20), value, dtype=np.uint16)).save(folder / f"{i}.png")
    dataset, _ = load(data_config(folder, tmp_path))
    assert dataset.images.shape == (3, 1, RES, RES)
    assert [int(image[0, 8, 8]) for image in dataset.images] == [64, 128, 191]


def _half_transparent_palette_png(path: Path) -> Path:
    """Left half opaque blue (index 1), right half transparent red (index 0)."""
    image = Image.new("P", (20, 20), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.paste(1, (0, 0, 10, 20))
    image.save(path, transparency=0)
    return path


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_transparency_is_composited_on_the_background(tmp_path, suffix):
    path = _half_transparent_palette_png(tmp_path / f"palette{suffix}")
    with Image.open(path) as image:
        assert image.mode == "P" and image.info["transparency"] == 0

    pixels, gray, _ = decoded(path)
    assert pixels[8, 2].tolist() == [0, 0, 255]  # opaque part kept
    assert pixels[8, 14].tolist() == [255, 255, 255]  # transparent part is white by default, not the red underneath
    assert gray is False

    black, _, _ = decoded(path, background="#000000")
    assert black[8, 2].tolist() == [0, 0, 255]
    assert black[8, 14].tolist() == [0, 0, 0]


def test_rgba_is_composited_on_white_by_default_and_black_on_request(tmp_path):
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 40, 10)
    rgba[:, :10, 3] = 255  # left half opaque, right half fully transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)

    white, gray, _ = decoded(path)
    assert white[8, 2].tolist() == [200, 40, 10]
    assert white[8, 14].tolist() == [255, 255, 255]
    assert gray is False
    black, _, _ = decoded(path, background="#000000")
    assert black[8, 14].tolist() == [0, 0, 0]
    named, _, _ = decoded(path, background="red")
    assert named[8, 14].tolist() == [255, 0, 0]


def test_semi_transparent_rgba_is_blended_with_the_background(tmp_path):
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 3] = 128  # black at ~50% opacity
    path = tmp_path / "half.png"
    Image.fromarray(rgba).save(path)
    pixels, _, _ = decoded(path)
    assert_close(pixels[8, 8], (127, 127, 127), 1)


def test_la_grayscale_with_alpha_is_composited_and_counts_as_gray(tmp_path):
    la = np.zeros((20, 20, 2), dtype=np.uint8)
    la[..., 0] = 60
    la[:, :10, 1] = 255
    path = tmp_path / "la.png"
    Image.fromarray(la).save(path)
    with Image.open(path) as image:
        assert image.mode == "LA"

    pixels, gray, _ = decoded(path)
    assert pixels[8, 2].tolist() == [60, 60, 60]
    assert pixels[8, 14].tolist() == [255, 255, 255]
    assert gray is True
    black, _, _ = decoded(path, background="#000000")
    assert black[8, 14].tolist() == [0, 0, 0]

    dataset, _ = load(data_config(tmp_path, tmp_path))
    assert dataset.images.shape == (1, 1, RES, RES)
    assert int(dataset.images[0, 0, 8, 2]) == 60 and int(dataset.images[0, 0, 8, 14]) == 255


def test_colour_hidden_under_transparent_pixels_does_not_make_an_image_colour(tmp_path):
    folder = tmp_path / "icons"
    folder.mkdir()
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., :3] = 120
    rgba[:, 10:, 0] = 255  # red, but only where the image is fully transparent
    rgba[:, :10, 3] = 255
    Image.fromarray(rgba).save(folder / "a.png")
    Image.fromarray(rgba).save(folder / "b.png")

    pixels, gray, _ = decoded(folder / "a.png")
    assert pixels[8, 2].tolist() == [120, 120, 120] and pixels[8, 14].tolist() == [255, 255, 255]  # what it shows
    assert gray is True
    dataset, _ = load(data_config(folder, tmp_path))
    assert dataset.images.shape[1] == 1


def _red_left_blue_right_jpeg(path: Path, orientation: int) -> Path:
    """64 wide, 32 high: left half red, right half blue; the EXIF Orientation tag says how to show it."""
    pixels = np.zeros((32, 64, 3), dtype=np.uint8)
    pixels[:, :32] = (255, 0, 0)
    pixels[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return path


RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.mark.parametrize(
    "orientation, top, bottom, left, right",
    [
        (1, None, None, RED, BLUE),  # as stored: left/right halves survive the centre crop
        (6, RED, BLUE, None, None),  # rotate 90 clockwise to display: the stored left half ends on top
        (8, BLUE, RED, None, None),  # rotate 90 anticlockwise: the stored right half ends on top
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, top, bottom, left, right):
    path = _red_left_blue_right_jpeg(tmp_path / f"o{orientation}.jpg", orientation)
    with Image.open(path) as image:
        assert image.size == (64, 32) and image.getexif()[0x0112] == orientation
    pixels, _, _ = decoded(path)
    if top:
        assert_close(pixels[2, 8], top, 40)
        assert_close(pixels[13, 8], bottom, 40)
    else:
        assert_close(pixels[8, 2], left, 40)
        assert_close(pixels[8, 13], right, 40)


def test_animated_gif_uses_its_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    first, second = Image.new("RGB", (20, 20), RED), Image.new("RGB", (20, 20), (0, 255, 0))
    first.save(path, save_all=True, append_images=[second], duration=100)
    with Image.open(path) as image:
        assert image.n_frames == 2
    pixels, gray, _ = decoded(path)
    assert (pixels.reshape(-1, 3) == RED).all()
    assert gray is False


@pytest.mark.parametrize("suffix, save", [(".webp", {"lossless": True}), (".bmp", {}), (".tif", {}), (".tiff", {}),
                                          (".gif", {}), (".png", {})])
def test_formats_decode_exactly(tmp_path, suffix, save):
    colour = (10, 100, 200)
    path = solid(tmp_path / f"image{suffix}", colour, **save)
    pixels, gray, upscaled = decoded(path)
    assert pixels.shape == (RES, RES, 3)
    assert (pixels.reshape(-1, 3) == colour).all()
    assert (gray, upscaled) == (False, False)


def test_jpeg_decodes_approximately(tmp_path):
    pixels, _, _ = decoded(solid(tmp_path / "image.jpeg", (10, 100, 200), quality=95))
    assert_close(pixels[8, 8], (10, 100, 200), 3)


def test_non_square_images_are_centre_cropped_and_small_ones_upscaled(tmp_path):
    wide = np.zeros((16, 48, 3), dtype=np.uint8)
    wide[:, :16] = RED  # only the outer thirds are coloured: a centre crop keeps neither
    wide[:, 32:] = BLUE
    Image.fromarray(wide).save(tmp_path / "wide.png")
    pixels, _, upscaled = decoded(tmp_path / "wide.png")
    assert (pixels == 0).all() and upscaled is False
    _, _, upscaled = decoded(solid(tmp_path / "small.png", RED, size=(12, 40)))
    assert upscaled is True


def test_grayscale_folder_gets_one_channel_and_colour_folder_three(tmp_path):
    gray_folder = tmp_path / "gray"
    write_images(gray_folder, 3, mode="L", seed=3)
    solid(gray_folder / "rgb_but_gray.png", (90, 90, 90))  # saved as RGB, but carries no colour
    dataset, _ = load(data_config(gray_folder, tmp_path))
    assert dataset.images.shape == (4, 1, RES, RES)
    assert int(dataset.images[3, 0, 8, 8]) == 90
    with Image.open(gray_folder / "img000.png") as image:
        expected = np.asarray(ImageOps.fit(image, (RES, RES), method=Image.Resampling.LANCZOS))
    assert (dataset.images[0, 0].numpy() == expected).all()

    colour_folder = tmp_path / "colour"
    write_images(colour_folder, 3, seed=4)
    dataset, _ = load(data_config(colour_folder, tmp_path))
    assert dataset.images.shape == (3, 3, RES, RES)

    write_images(gray_folder, 1, seed=5, suffix=".bmp")  # one colour image makes the whole folder colour
    dataset, _ = load(data_config(gray_folder, tmp_path))
    assert dataset.images.shape == (5, 3, RES, RES)


def test_channels_setting_overrides_the_automatic_choice(tmp_path):
    gray_folder = tmp_path / "gray"
    write_images(gray_folder, 2, mode="L")
    dataset, _ = load(data_config(gray_folder, tmp_path, channels=3))
    assert dataset.images.shape == (2, 3, RES, RES)
    assert (dataset.images[:, 0] == dataset.images[:, 1]).all() and (dataset.images[:, 1] == dataset.images[:, 2]).all()

    colour_folder = tmp_path / "colour"
    solid(colour_folder / "a.png", (200, 100, 50))
    solid(colour_folder / "b.png", (0, 0, 255))
    dataset, _ = load(data_config(colour_folder, tmp_path, channels=1))
    assert dataset.images.shape == (2, 1, RES, RES)
    # ITU-R 601 luma, as PIL's "L": round(.299 R + .587 G + .114 B)
    assert (dataset.images[0] == 124).all() and (dataset.images[1] == 29).all()


def test_uppercase_extensions_are_found(tmp_path):
    folder = tmp_path / "shouty"
    solid(folder / "A.PNG", RED)
    solid(folder / "B.JPG", RED)
    solid(folder / "c.Jpeg", RED)
    solid(folder / "d.TIFF", RED)
    (folder / "readme.txt").write_text("not an image")
    (folder / "E.PSD").write_bytes(b"8BPS")
    files, labels, classes = scan_folder(folder, log=lambda line: None)
    assert [f.name for f in files] == ["A.PNG", "B.JPG", "c.Jpeg", "d.TIFF"]
    dataset, lines = load(data_config(folder, tmp_path))
    assert dataset.files == ["A.PNG", "B.JPG", "c.Jpeg", "d.TIFF"]
    assert lines == ["4 images ready"]


def test_hidden_files_and_folders_are_ignored(tmp_path):
    folder = tmp_path / "visible"
    write_images(folder, 2)
    solid(folder / ".hidden.png", RED)
    solid(folder / "._resource_fork.jpg", RED)
    (folder / ".broken.png").write_bytes(b"")  # would be a skip report if it were read
    write_images(folder / ".thumbnails", 3)  # a hidden folder is not a class
    dataset, lines = load(data_config(folder, tmp_path))
    assert dataset.files == ["img000.png", "img001.png"]
    assert dataset.class_names == ["visible"]
    assert lines == ["2 images ready"]

    classes = tmp_path / "classes"
    write_images(classes / "cats", 2)
    write_images(classes / "cats" / ".cache", 2)  # hidden folder inside a class
    write_images(classes / ".git", 2)
    solid(classes / "cats" / ".DS_Store.png", RED)
    dataset, lines = load(data_config(classes, tmp_path))
    assert dataset.class_names == ["cats"]
    assert dataset.files == ["cats/img000.png", "cats/img001.png"]
    assert lines == ["2 images ready"]


# --- 3. folder errors -----------------------------------------------------------------------------------------------


def test_empty_folder_names_the_folder_and_the_formats(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    (folder / "sub").mkdir()
    with pytest.raises(GanError) as error:
        load(data_config(folder, tmp_path))
    assert str(error.value) == (
        f"no images found in {folder}: put images (PNG, JPEG, WebP, BMP, GIF, TIFF) directly in the folder, "
        f"or in one subfolder per class"
    )


def test_missing_folder_says_it_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(GanError) as error:
        load(data_config(missing, tmp_path))
    assert str(error.value) == f"data folder {missing} does not exist: check the path given to --data"


def test_a_file_instead_of_a_folder_is_refused(tmp_path):
    file = solid(tmp_path / "one.png", RED)
    with pytest.raises(GanError) as error:
        load(data_config(file, tmp_path))
    assert str(error.value) == (
        f"{file} is a file, not a folder: --data takes a folder of images (or of class subfolders)"
    )


def test_no_data_path_asks_for_data(tmp_path):
    cfg = data_config(tmp_path, tmp_path)
    cfg.path = ""
    with pytest.raises(GanError, match=r"^--data is required: a folder of images$"):
        load(cfg)


def test_folder_of_only_bad_images_says_no_usable_image(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_text("text")
    truncated_png(folder / "c.png")
    lines: list[str] = []
    with pytest.raises(GanError) as error:
        load_dataset(data_config(folder, tmp_path), log=lines.append)
    assert str(error.value) == (
        f"no usable image in {folder}: all 3 image files were skipped (reasons above). "
        f"Supported formats: PNG, JPEG, WebP, BMP, GIF, TIFF."
    )
    assert lines == [
        "skipped a.png: empty file (0 bytes)",
        f"skipped b.jpg: not an image (or not one of {FORMATS})",
        "skipped c.png: truncated file",
        "0 images ready, 3 of 3 files skipped",
    ]


# --- 4. layout: flat folder or one subfolder per class --------------------------------------------------------------


def test_flat_folder_is_one_class_named_after_the_folder(flat_folder, tmp_path):
    dataset, lines = load(data_config(flat_folder, tmp_path))
    assert dataset.class_names == ["flat"]
    assert dataset.labels.tolist() == [0] * 10
    assert dataset.class_counts == [10]
    assert len(dataset) == 10
    assert dataset.files == [f"img{i:03d}.png" for i in range(10)]
    assert lines == ["10 images ready"]


def test_flat_folder_given_as_dot_is_named_after_the_real_folder(flat_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(flat_folder)
    files, labels, classes = scan_folder(Path("."), log=lambda line: None)
    assert classes == ["flat"]
    assert len(files) == 10 and labels == [0] * 10


def test_class_subfolders_give_sorted_class_names_and_labels(class_folder, tmp_path):
    dataset, lines = load(data_config(class_folder, tmp_path))
    assert dataset.class_names == ["cats", "dogs"]
    assert dataset.class_counts == [6, 5]
    assert dataset.labels.tolist() == [0] * 6 + [1] * 5
    assert dataset.files == [f"cats/img{i:03d}.png" for i in range(6)] + [f"dogs/img{i:03d}.png" for i in range(5)]
    assert dataset.images.shape == (11, 3, RES, RES)
    assert lines == ["11 images ready"]


def test_class_order_is_sorted_not_creation_order_and_nested_images_count(tmp_path):
    root = tmp_path / "animals"
    for name, count in (("zebra", 1), ("mango", 2), ("Apple", 3)):
        write_images(root / name, count, seed=count)
    write_images(root / "mango" / "ripe" / "very", 2, seed=9)  # deeper folders belong to their top class folder
    (root / "empty_class").mkdir()  # no images: not a class
    (root / "empty_class" / "notes.txt").write_text("x")

    files, labels, classes = scan_folder(root, log=lambda line: None)
    assert classes == ["Apple", "mango", "zebra"]
    assert labels == [0, 0, 0, 1, 1, 1, 1, 2]
    dataset, _ = load(data_config(root, tmp_path))
    assert dataset.class_counts == [3, 4, 1]
    assert dataset.files[3:7] == [
        "mango/img000.png", "mango/img001.png", "mango/ripe/very/img000.png", "mango/ripe/very/img001.png",
    ]


def test_top_level_images_beside_class_folders_are_ignored_with_a_warning(class_folder, tmp_path):
    write_images(class_folder, 2, seed=7, suffix=".jpg")
    dataset, lines = load(data_config(class_folder, tmp_path))
    assert lines[0] == (
        f"warning: ignoring 2 images directly in {class_folder}, which has class subfolders; "
        f"move them into a class folder to use them"
    )
    assert lines[1:] == ["11 images ready"]
    assert dataset.class_names == ["cats", "dogs"]
    assert not any("/" not in f for f in dataset.files)


def test_class_whose_images_are_all_bad_keeps_its_label_with_a_warning(tmp_path):
    root = tmp_path / "pets"
    write_images(root / "cats", 2)
    (root / "dogs").mkdir()
    (root / "dogs" / "a.png").write_bytes(b"")
    write_images(root / "owls", 1)
    dataset, lines = load(data_config(root, tmp_path))
    assert dataset.class_names == ["cats", "dogs", "owls"]
    assert dataset.class_counts == [2, 0, 1]
    assert dataset.labels.tolist() == [0, 0, 2]
    assert lines == [
        "skipped dogs/a.png: empty file (0 bytes)",
        "3 images ready, 1 of 4 files skipped",
        "warning: class folder 'dogs' has no usable image",
    ]


# --- 5. the decoded-image cache -------------------------------------------------------------------------------------


def _cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt")) if folder.exists() else []


def test_second_load_reads_the_cache_and_gives_identical_tensors(tmp_path):
    folder = tmp_path / "cached"
    write_images(folder / "a", 3, seed=1)
    write_images(folder / "b", 2, seed=2)
    (folder / "b" / "bad.png").write_bytes(b"")
    cfg = data_config(folder, tmp_path, cache=True)

    first, lines = load(cfg)
    cache = _cache_files(tmp_path / "cache")
    assert len(cache) == 1 and cache[0].name.startswith("cached-")
    assert not any("cache" in line for line in lines)

    second, lines = load(cfg)
    assert lines == [
        f"loaded decoded images from cache {cache[0]}",
        "skipped b/bad.png: empty file (0 bytes)",  # the skip report survives the cache
        "5 images ready, 1 of 6 files skipped",
    ]
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert (first.files, first.class_names) == (second.files, second.class_names)

    uncached, _ = load(data_config(folder, tmp_path, cache=False))
    assert torch.equal(first.images, uncached.images)


def test_cache_defaults_to_xdg_cache_home(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True, cache_dir="")
    load(cfg)
    assert len(_cache_files(tmp_path / "xdg-cache" / "gan")) == 1  # conftest points XDG_CACHE_HOME into tmp_path
    _, lines = load(cfg)
    assert lines[0].startswith(f"loaded decoded images from cache {tmp_path / 'xdg-cache' / 'gan'}")


def test_no_cache_writes_and_reads_nothing(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=False)
    load(cfg)
    _, lines = load(cfg)
    assert _cache_files(tmp_path / "cache") == []
    assert not any("cache" in line for line in lines)


def test_modified_file_invalidates_the_cache(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    before, _ = load(cfg)

    target = flat_folder / "img003.png"
    solid(target, (1, 2, 3), size=(24, 20))
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    after, lines = load(cfg)
    assert not any("cache" in line for line in lines)
    assert (after.images[3].permute(1, 2, 0).reshape(-1, 3) == torch.tensor([1, 2, 3], dtype=torch.uint8)).all()
    assert not torch.equal(before.images[3], after.images[3])
    assert torch.equal(before.images[:3], after.images[:3]) and torch.equal(before.images[4:], after.images[4:])
    assert len(_cache_files(tmp_path / "cache")) == 2

    again, lines = load(cfg)
    assert lines[0].startswith("loaded decoded images from cache ")
    assert torch.equal(again.images, after.images)


def test_touching_a_file_or_changing_settings_invalidates_the_cache(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    load(cfg)
    target = flat_folder / "img000.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same bytes, newer mtime
    _, lines = load(cfg)
    assert not any("cache" in line for line in lines)

    _, lines = load(data_config(flat_folder, tmp_path, cache=True, background="black"))
    assert not any("cache" in line for line in lines)
    _, lines = load(data_config(flat_folder, tmp_path, cache=True, resolution=32))
    assert not any("cache" in line for line in lines)
    assert len(_cache_files(tmp_path / "cache")) == 4


def test_corrupted_cache_is_ignored_with_a_warning_and_rebuilt(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    good, _ = load(cfg)
    [cache] = _cache_files(tmp_path / "cache")
    cache.write_bytes(b"not a torch file at all")

    rebuilt, lines = load(cfg)
    assert lines[0].startswith(f"warning: ignoring unreadable cache {cache} (")
    assert lines[0].endswith("); decoding again")
    assert lines[1:] == ["10 images ready"]
    assert torch.equal(good.images, rebuilt.images)

    again, lines = load(cfg)
    assert lines == [f"loaded decoded images from cache {cache}", "10 images ready"]
    assert torch.equal(good.images, again.images)


def test_unreadable_cache_warning_is_one_line(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    load(cfg)
    [cache] = _cache_files(tmp_path / "cache")
    cache.write_bytes(b"garbage")
    _, lines = load(cfg)
    assert lines[0].startswith("warning: ignoring unreadable cache ")
    assert "\n" not in lines[0]


def test_truncated_cache_is_ignored_and_rebuilt(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    good, _ = load(cfg)
    [cache] = _cache_files(tmp_path / "cache")
    cache.write_bytes(cache.read_bytes()[:100])
    rebuilt, lines = load(cfg)
    assert lines[0].startswith(f"warning: ignoring unreadable cache {cache} (")
    assert torch.equal(good.images, rebuilt.images)


def test_unwritable_cache_folder_only_warns(flat_folder, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    dataset, lines = load(data_config(flat_folder, tmp_path, cache=True, cache_dir=str(blocker)))
    assert len(dataset) == 10
    assert lines[0].startswith(f"warning: could not write the image cache in {blocker} (")
    assert lines[0].endswith("); use --cache-dir or --no-cache")
    assert lines[1:] == ["10 images ready"]


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")


def _mapped_from(tensor: torch.Tensor) -> str:
    """The file the tensor's memory is mapped from ('' if none), from /proc/self/maps."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(a, 16) for a in fields[0].split("-"))
        if start <= address < end:
            return fields[5] if len(fields) == 6 else ""
    return ""


@linux_only
def test_above_the_ram_limit_the_cache_is_memory_mapped_and_gives_identical_tensors(tmp_path):
    folder = tmp_path / "big"
    write_images(folder / "a", 5, seed=1)
    write_images(folder / "b", 4, seed=2)
    (folder / "b" / "bad.png").write_bytes(b"")
    in_ram, _ = load(data_config(folder, tmp_path))

    cfg = data_config(folder, tmp_path, cache=True, ram_limit_gb=0.0)
    first, _ = load(cfg)
    second, lines = load(cfg)
    [index] = _cache_files(tmp_path / "cache")
    assert lines[0] == f"loaded decoded images from cache {index} (memory-mapped)"
    assert sorted(p.name for p in index.parent.iterdir()) == [index.name, index.with_suffix(".u8").name]
    for dataset in (first, second):
        assert _mapped_from(dataset.images) == str(index.with_suffix(".u8"))
        assert torch.equal(dataset.images, in_ram.images) and torch.equal(dataset.labels, in_ram.labels)
        assert dataset.files == in_ram.files
    # A memory-mapped dataset trains like one in RAM, and nothing written to its tensor reaches the cache file.
    batch, _ = next(RealBatches(second, 4, True, False, torch.Generator().manual_seed(0), torch.device("cpu")))
    assert batch.shape == (4, 3, RES, RES)
    second.images[0] = 0
    third, _ = load(cfg)
    assert torch.equal(third.images, in_ram.images)


@linux_only
def test_memory_mapped_without_a_cache_leaves_no_file(flat_folder, tmp_path):
    dataset, _ = load(data_config(flat_folder, tmp_path, ram_limit_gb=0.0))
    in_ram, _ = load(data_config(flat_folder, tmp_path))
    # Decoded into a hidden file in the cache folder (a disk, unlike a tmpfs /tmp), deleted once mapped.
    assert _mapped_from(dataset.images).startswith(str(tmp_path / "cache" / ".decoding-"))
    assert _mapped_from(dataset.images).endswith("(deleted)")
    assert torch.equal(dataset.images, in_ram.images)
    assert list((tmp_path / "cache").iterdir()) == []


@linux_only
def test_memory_mapped_with_an_unwritable_cache_folder_decodes_into_the_temporary_folder(flat_folder, tmp_path,
                                                                                          monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    dataset, lines = load(data_config(flat_folder, tmp_path, cache=True, cache_dir=str(blocker), ram_limit_gb=0.0))
    assert lines[0].startswith(f"warning: could not write the image cache in {blocker} (")
    assert lines[1].startswith(f"warning: cannot decode into {blocker} (")
    assert lines[2:] == ["10 images ready"]
    assert _mapped_from(dataset.images).startswith(str(tmp_path / "tmp" / ".decoding-"))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_one_channel_from_the_memory_mapped_cache_matches_ram(tmp_path):
    gray_folder, colour_folder = tmp_path / "gray", tmp_path / "colour"
    for i in range(3):
        solid(gray_folder / f"{i}.png", 40 * i, mode="L")
        solid(colour_folder / f"{i}.png", (200, 40 * i, 10))
    for folder in (gray_folder, colour_folder):
        mapped, _ = load(data_config(folder, tmp_path, channels=0 if folder == gray_folder else 1, ram_limit_gb=0.0))
        in_ram, _ = load(data_config(folder, tmp_path, channels=0 if folder == gray_folder else 1))
        assert mapped.images.shape == (3, 1, RES, RES)
        assert torch.equal(mapped.images, in_ram.images)
    assert mapped.images[0, 0, 0, 0] == round(0.299 * 200 + 0.114 * 10)


@pytest.mark.parametrize("ram_limit_gb", [1.0, 0.0])
def test_grey_image_with_transparency_on_a_coloured_background_becomes_its_luma(tmp_path, ram_limit_gb):
    # An LA image counts as grey, but composited onto red its pixels are not: one channel must hold the luma.
    solid(tmp_path / "la" / "clear.png", (0, 0), mode="LA")
    dataset, _ = load(data_config(tmp_path / "la", tmp_path, background="red", ram_limit_gb=ram_limit_gb))
    assert dataset.images.shape == (1, 1, RES, RES)
    assert (dataset.images == round(0.299 * 255)).all()


@pytest.mark.parametrize("ram_limit_gb", [1.0, 0.0])
def test_cache_index_that_cannot_be_written_leaves_no_pixel_file(flat_folder, tmp_path, monkeypatch, ram_limit_gb):
    in_ram, _ = load(data_config(flat_folder, tmp_path))

    def disk_full(*args, **kwargs):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", disk_full)  # what torch.save raises on a full disk
    dataset, lines = load(data_config(flat_folder, tmp_path, cache=True, ram_limit_gb=ram_limit_gb))
    assert lines[0].startswith(f"warning: could not write the image cache in {tmp_path / 'cache'} (")
    assert torch.equal(dataset.images, in_ram.images)
    assert list((tmp_path / "cache").iterdir()) == []  # neither an index nor a pixel file without one


def test_truncated_pixel_file_is_ignored_and_rebuilt(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    good, _ = load(cfg)
    [index] = _cache_files(tmp_path / "cache")
    pixels = index.with_suffix(".u8")
    pixels.write_bytes(pixels.read_bytes()[:100])
    rebuilt, lines = load(cfg)
    assert lines[0] == (f"warning: ignoring unreadable cache {index} (ValueError: {pixels.name} no longer holds the "
                        f"pixels it was written with); decoding again")
    assert torch.equal(good.images, rebuilt.images)
    assert load(cfg)[1][0] == f"loaded decoded images from cache {index}"


@pytest.mark.parametrize("ram_limit_gb", [1.0, 0.0])  # read into RAM, and memory-mapped
def test_pixel_file_replaced_by_other_bytes_of_the_same_size_is_rebuilt(flat_folder, tmp_path, ram_limit_gb):
    cfg = data_config(flat_folder, tmp_path, cache=True, ram_limit_gb=ram_limit_gb)
    expected = load(cfg)[0].images.clone()  # a mapped tensor would see the new bytes
    [index] = _cache_files(tmp_path / "cache")
    pixels = index.with_suffix(".u8")
    pixels.write_bytes(np.random.default_rng(0).integers(0, 256, pixels.stat().st_size, dtype=np.uint8).tobytes())
    rebuilt, lines = load(cfg)
    assert lines[0].startswith(f"warning: ignoring unreadable cache {index} (ValueError: ")
    assert torch.equal(expected, rebuilt.images)


def test_negative_ram_limit_is_refused():
    with pytest.raises(GanError, match="--ram-limit-gb must be 0"):
        DataConfig(path="x", ram_limit_gb=-1).validate()


# --- 6. parallel decoding -------------------------------------------------------------------------------------------


def test_parallel_decode_matches_serial_decode(tmp_path):
    folder = tmp_path / "many"
    write_images(folder / "a", 40, size=(16, 16), seed=1)
    write_images(folder / "b", 24, size=(16, 16), seed=2, suffix=".bmp")
    (folder / "b" / "zzz.png").write_bytes(b"")

    serial, serial_lines = load(data_config(folder, tmp_path, workers=1))
    parallel, parallel_lines = load(data_config(folder, tmp_path, workers=2))

    assert serial.images.shape == (64, 3, 16, 16)
    assert torch.equal(serial.images, parallel.images)
    assert torch.equal(serial.labels, parallel.labels)
    assert serial.files == parallel.files
    assert serial_lines == parallel_lines == ["skipped b/zzz.png: empty file (0 bytes)",
                                              "64 images ready, 1 of 65 files skipped"]


def test_subfolders_without_images_are_named_in_a_warning(class_folder, tmp_path):
    (class_folder / "notes").mkdir()
    (class_folder / "notes" / "readme.txt").write_text("not an image")
    dataset, lines = load(data_config(class_folder, tmp_path))
    assert dataset.class_names == ["cats", "dogs"]
    assert "warning: ignoring subfolders with no image files: notes" in lines
