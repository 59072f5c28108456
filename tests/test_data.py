"""Loading an image folder: the decoded-image cache (in RAM or memory-mapped) and parallel decoding. Every image
is tiny (16-64 px) and built here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import RES, data_config, load_folder, solid, write_images
from gan.batches import RealBatches
from gan.config import DataConfig
from gan.errors import GanError


# --- 5. the decoded-image cache -------------------------------------------------------------------------------------


def _cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt")) if folder.exists() else []


def test_second_load_reads_the_cache_and_gives_identical_tensors(tmp_path):
    folder = tmp_path / "cached"
    write_images(folder / "a", 3, seed=1)
    write_images(folder / "b", 2, seed=2)
    (folder / "b" / "bad.png").write_bytes(b"")
    cfg = data_config(folder, tmp_path, cache=True)

    first, lines = load_folder(cfg)
    cache = _cache_files(tmp_path / "cache")
    assert len(cache) == 1 and cache[0].name.startswith("cached-")
    assert not any("cache" in line for line in lines)

    second, lines = load_folder(cfg)
    assert lines == [
        f"loaded decoded images from cache {cache[0]}",
        "skipped b/bad.png: empty file (0 bytes)",  # the skip report survives the cache
        "5 images ready, 1 of 6 files skipped",
    ]
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert (first.files, first.class_names) == (second.files, second.class_names)

    uncached, _ = load_folder(data_config(folder, tmp_path, cache=False))
    assert torch.equal(first.images, uncached.images)


def test_cache_defaults_to_xdg_cache_home(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True, cache_dir="")
    load_folder(cfg)
    assert len(_cache_files(tmp_path / "xdg-cache" / "gan")) == 1  # conftest points XDG_CACHE_HOME into tmp_path
    _, lines = load_folder(cfg)
    assert lines[0].startswith(f"loaded decoded images from cache {tmp_path / 'xdg-cache' / 'gan'}")


def test_no_cache_writes_and_reads_nothing(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=False)
    load_folder(cfg)
    _, lines = load_folder(cfg)
    assert _cache_files(tmp_path / "cache") == []
    assert not any("cache" in line for line in lines)


def test_modified_file_invalidates_the_cache(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    before, _ = load_folder(cfg)

    target = flat_folder / "img003.png"
    solid(target, (1, 2, 3), size=(24, 20))
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    after, lines = load_folder(cfg)
    assert not any("cache" in line for line in lines)
    assert (after.images[3].permute(1, 2, 0).reshape(-1, 3) == torch.tensor([1, 2, 3], dtype=torch.uint8)).all()
    assert not torch.equal(before.images[3], after.images[3])
    assert torch.equal(before.images[:3], after.images[:3]) and torch.equal(before.images[4:], after.images[4:])
    assert len(_cache_files(tmp_path / "cache")) == 2

    again, lines = load_folder(cfg)
    assert lines[0].startswith("loaded decoded images from cache ")
    assert torch.equal(again.images, after.images)


def test_touching_a_file_or_changing_settings_invalidates_the_cache(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    load_folder(cfg)
    target = flat_folder / "img000.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same bytes, newer mtime
    _, lines = load_folder(cfg)
    assert not any("cache" in line for line in lines)

    _, lines = load_folder(data_config(flat_folder, tmp_path, cache=True, background="black"))
    assert not any("cache" in line for line in lines)
    _, lines = load_folder(data_config(flat_folder, tmp_path, cache=True, resolution=32))
    assert not any("cache" in line for line in lines)
    assert len(_cache_files(tmp_path / "cache")) == 4


def test_corrupted_cache_is_ignored_with_a_warning_and_rebuilt(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    good, _ = load_folder(cfg)
    [cache] = _cache_files(tmp_path / "cache")
    cache.write_bytes(b"not a torch file at all")

    rebuilt, lines = load_folder(cfg)
    assert lines[0].startswith(f"warning: ignoring unreadable cache {cache} (")
    assert lines[0].endswith("); decoding again")
    assert lines[1:] == ["10 images ready"]
    assert torch.equal(good.images, rebuilt.images)

    again, lines = load_folder(cfg)
    assert lines == [f"loaded decoded images from cache {cache}", "10 images ready"]
    assert torch.equal(good.images, again.images)


def test_unreadable_cache_warning_is_one_line(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    load_folder(cfg)
    [cache] = _cache_files(tmp_path / "cache")
    cache.write_bytes(b"garbage")
    _, lines = load_folder(cfg)
    assert lines[0].startswith("warning: ignoring unreadable cache ")
    assert "\n" not in lines[0]


def test_truncated_cache_is_ignored_and_rebuilt(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    good, _ = load_folder(cfg)
    [cache] = _cache_files(tmp_path / "cache")
    cache.write_bytes(cache.read_bytes()[:100])
    rebuilt, lines = load_folder(cfg)
    assert lines[0].startswith(f"warning: ignoring unreadable cache {cache} (")
    assert torch.equal(good.images, rebuilt.images)


def test_unwritable_cache_folder_only_warns(flat_folder, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    dataset, lines = load_folder(data_config(flat_folder, tmp_path, cache=True, cache_dir=str(blocker)))
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
    in_ram, _ = load_folder(data_config(folder, tmp_path))

    cfg = data_config(folder, tmp_path, cache=True, ram_limit_gb=0.0)
    first, _ = load_folder(cfg)
    second, lines = load_folder(cfg)
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
    third, _ = load_folder(cfg)
    assert torch.equal(third.images, in_ram.images)


@linux_only
def test_memory_mapped_without_a_cache_leaves_no_file(flat_folder, tmp_path):
    dataset, _ = load_folder(data_config(flat_folder, tmp_path, ram_limit_gb=0.0))
    in_ram, _ = load_folder(data_config(flat_folder, tmp_path))
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
    dataset, lines = load_folder(data_config(flat_folder, tmp_path, cache=True, cache_dir=str(blocker), ram_limit_gb=0.0))
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
        mapped, _ = load_folder(data_config(folder, tmp_path, channels=0 if folder == gray_folder else 1, ram_limit_gb=0.0))
        in_ram, _ = load_folder(data_config(folder, tmp_path, channels=0 if folder == gray_folder else 1))
        assert mapped.images.shape == (3, 1, RES, RES)
        assert torch.equal(mapped.images, in_ram.images)
    assert mapped.images[0, 0, 0, 0] == round(0.299 * 200 + 0.114 * 10)


@pytest.mark.parametrize("ram_limit_gb", [1.0, 0.0])
def test_grey_image_with_transparency_on_a_coloured_background_becomes_its_luma(tmp_path, ram_limit_gb):
    # An LA image counts as grey, but composited onto red its pixels are not: one channel must hold the luma.
    solid(tmp_path / "la" / "clear.png", (0, 0), mode="LA")
    dataset, _ = load_folder(data_config(tmp_path / "la", tmp_path, background="red", ram_limit_gb=ram_limit_gb))
    assert dataset.images.shape == (1, 1, RES, RES)
    assert (dataset.images == round(0.299 * 255)).all()


@pytest.mark.parametrize("ram_limit_gb", [1.0, 0.0])
def test_cache_index_that_cannot_be_written_leaves_no_pixel_file(flat_folder, tmp_path, monkeypatch, ram_limit_gb):
    in_ram, _ = load_folder(data_config(flat_folder, tmp_path))

    def disk_full(*args, **kwargs):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", disk_full)  # what torch.save raises on a full disk
    dataset, lines = load_folder(data_config(flat_folder, tmp_path, cache=True, ram_limit_gb=ram_limit_gb))
    assert lines[0].startswith(f"warning: could not write the image cache in {tmp_path / 'cache'} (")
    assert torch.equal(dataset.images, in_ram.images)
    assert list((tmp_path / "cache").iterdir()) == []  # neither an index nor a pixel file without one


def test_truncated_pixel_file_is_ignored_and_rebuilt(flat_folder, tmp_path):
    cfg = data_config(flat_folder, tmp_path, cache=True)
    good, _ = load_folder(cfg)
    [index] = _cache_files(tmp_path / "cache")
    pixels = index.with_suffix(".u8")
    pixels.write_bytes(pixels.read_bytes()[:100])
    rebuilt, lines = load_folder(cfg)
    assert lines[0] == (f"warning: ignoring unreadable cache {index} (ValueError: {pixels.name} no longer holds the "
                        f"pixels it was written with); decoding again")
    assert torch.equal(good.images, rebuilt.images)
    assert load_folder(cfg)[1][0] == f"loaded decoded images from cache {index}"


@pytest.mark.parametrize("ram_limit_gb", [1.0, 0.0])  # read into RAM, and memory-mapped
def test_pixel_file_replaced_by_other_bytes_of_the_same_size_is_rebuilt(flat_folder, tmp_path, ram_limit_gb):
    cfg = data_config(flat_folder, tmp_path, cache=True, ram_limit_gb=ram_limit_gb)
    expected = load_folder(cfg)[0].images.clone()  # a mapped tensor would see the new bytes
    [index] = _cache_files(tmp_path / "cache")
    pixels = index.with_suffix(".u8")
    pixels.write_bytes(np.random.default_rng(0).integers(0, 256, pixels.stat().st_size, dtype=np.uint8).tobytes())
    rebuilt, lines = load_folder(cfg)
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

    serial, serial_lines = load_folder(data_config(folder, tmp_path, workers=1))
    parallel, parallel_lines = load_folder(data_config(folder, tmp_path, workers=2))

    assert serial.images.shape == (64, 3, 16, 16)
    assert torch.equal(serial.images, parallel.images)
    assert torch.equal(serial.labels, parallel.labels)
    assert serial.files == parallel.files
    assert serial_lines == parallel_lines == ["skipped b/zzz.png: empty file (0 bytes)",
                                              "64 images ready, 1 of 65 files skipped"]


def test_subfolders_without_images_are_named_in_a_warning(class_folder, tmp_path):
    (class_folder / "notes").mkdir()
    (class_folder / "notes" / "readme.txt").write_text("not an image")
    dataset, lines = load_folder(data_config(class_folder, tmp_path))
    assert dataset.class_names == ["cats", "dogs"]
    assert "warning: ignoring subfolders with no image files: notes" in lines
