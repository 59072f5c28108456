"""Decoding one file: the reasons a file is skipped, every image mode and format, transparency, orientation,
cropping and the grayscale choice."""

from __future__ import annotations

import errno
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from helpers import BLUE, RED, RES, data_config, decoded, load_folder, noise_png, solid, truncated_png, write_images
from gan.folders import scan_folder
from gan.images import FORMATS, BadImage, decode, decode_or_reason


def test_a_float_tiff_holding_nan_is_skipped_with_the_reason(tmp_path):
    values = np.full((8, 8), 0.5, dtype=np.float32)
    values[2, 3], values[4, 4] = np.nan, np.inf
    path = tmp_path / "nan.tif"
    Image.fromarray(values, mode="F").save(path)
    with pytest.raises(BadImage, match=r"^holds 2 non-finite pixel values \(NaN or infinity\)$"):
        decode(str(path), 16, "white", 10**6)


def test_a_finite_float_tiff_still_decodes(tmp_path):
    path = tmp_path / "fine.tif"
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32), mode="F").save(path)
    pixels, gray, _ = decode(str(path), 16, "white", 10**6)
    assert gray and int(pixels[0, 0, 0]) == 128


@pytest.mark.parametrize("values, reason", [
    (np.linspace(-3e5, 7e5, 64, dtype=np.float32), "pixel values from -300000 to 700000, outside 0..1 or 0..255"),
    (np.linspace(-2**31, 2**31 - 1, 64).astype(np.int32), "pixel values from -2.14748e+09 to 2.14748e+09, outside "
                                                          "0..65535"),
])
def test_a_deep_tiff_out_of_every_image_range_is_skipped_not_turned_black_and_white(tmp_path, values, reason):
    path = tmp_path / "deep.tif"
    Image.fromarray(values.reshape(8, 8)).save(path)
    with pytest.raises(BadImage, match=rf"^{re.escape(reason)}: scale them into that range \(or save it as an 8- or 16-bit "
                                       rf"image\) to use it$"):
        decode(str(path), 16, "white", 10**6)


@pytest.mark.parametrize("make, reason", [
    (lambda path: path.symlink_to(path.parent / "gone.png"), "a link to a file that does not exist (any more)"),
    (lambda path: path.symlink_to("/dev/zero"), "not a regular file (a pipe, a device or a socket): remove it or "
                                                 "link a real image"),
    (lambda path: os.mkfifo(path), "not a regular file (a pipe, a device or a socket): remove it or "
                                                 "link a real image"),
])
def test_links_to_nothing_devices_and_pipes_named_as_images_are_skipped_with_the_reason(tmp_path, make, reason):
    folder = tmp_path / "data"
    write_images(folder, 2)
    make(folder / "odd.png")
    dataset, lines = load_folder(data_config(folder, tmp_path))
    assert len(dataset) == 2 and f"skipped odd.png: {reason}" in lines


def test_a_file_that_cannot_be_read_says_so(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    Image.new("RGB", (8, 8)).save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", refuse)
    assert decode_or_reason(str(path), 16, "white", 10**6).reason == (
        "cannot be read (Permission denied): fix its permissions to use it")


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

    dataset, lines = load_folder(data_config(folder, tmp_path))

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

    dataset, lines = load_folder(data_config(folder, tmp_path, max_pixels=100))

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

    dataset, lines = load_folder(data_config(folder, tmp_path))

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
    dataset, _ = load_folder(data_config(folder, tmp_path))
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

    dataset, _ = load_folder(data_config(tmp_path, tmp_path))
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
    dataset, _ = load_folder(data_config(folder, tmp_path))
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
    dataset, _ = load_folder(data_config(gray_folder, tmp_path))
    assert dataset.images.shape == (4, 1, RES, RES)
    assert int(dataset.images[3, 0, 8, 8]) == 90
    with Image.open(gray_folder / "img000.png") as image:
        expected = np.asarray(ImageOps.fit(image, (RES, RES), method=Image.Resampling.LANCZOS))
    assert (dataset.images[0, 0].numpy() == expected).all()

    colour_folder = tmp_path / "colour"
    write_images(colour_folder, 3, seed=4)
    dataset, _ = load_folder(data_config(colour_folder, tmp_path))
    assert dataset.images.shape == (3, 3, RES, RES)

    write_images(gray_folder, 1, seed=5, suffix=".bmp")  # one colour image makes the whole folder colour
    dataset, _ = load_folder(data_config(gray_folder, tmp_path))
    assert dataset.images.shape == (5, 3, RES, RES)


def test_channels_setting_overrides_the_automatic_choice(tmp_path):
    gray_folder = tmp_path / "gray"
    write_images(gray_folder, 2, mode="L")
    dataset, _ = load_folder(data_config(gray_folder, tmp_path, channels=3))
    assert dataset.images.shape == (2, 3, RES, RES)
    assert (dataset.images[:, 0] == dataset.images[:, 1]).all() and (dataset.images[:, 1] == dataset.images[:, 2]).all()

    colour_folder = tmp_path / "colour"
    solid(colour_folder / "a.png", (200, 100, 50))
    solid(colour_folder / "b.png", (0, 0, 255))
    dataset, _ = load_folder(data_config(colour_folder, tmp_path, channels=1))
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
    dataset, lines = load_folder(data_config(folder, tmp_path))
    assert dataset.files == ["A.PNG", "B.JPG", "c.Jpeg", "d.TIFF"]
    assert lines == ["4 images ready"]


def test_hidden_files_and_folders_are_ignored(tmp_path):
    folder = tmp_path / "visible"
    write_images(folder, 2)
    solid(folder / ".hidden.png", RED)
    solid(folder / "._resource_fork.jpg", RED)
    (folder / ".broken.png").write_bytes(b"")  # would be a skip report if it were read
    write_images(folder / ".thumbnails", 3)  # a hidden folder is not a class
    dataset, lines = load_folder(data_config(folder, tmp_path))
    assert dataset.files == ["img000.png", "img001.png"]
    assert dataset.class_names == ["visible"]
    assert lines == ["2 images ready"]

    classes = tmp_path / "classes"
    write_images(classes / "cats", 2)
    write_images(classes / "cats" / ".cache", 2)  # hidden folder inside a class
    write_images(classes / ".git", 2)
    solid(classes / "cats" / ".DS_Store.png", RED)
    dataset, lines = load_folder(data_config(classes, tmp_path))
    assert dataset.class_names == ["cats"]
    assert dataset.files == ["cats/img000.png", "cats/img001.png"]
    assert lines == ["2 images ready"]
