"""The training images: the files of a data folder (gan.folders), decoded once, in parallel, into one uint8 tensor,
and cached on disk so that the next run starts at once (no decoding in the training step; gan.batches samples it).

Decoded pixels live in RAM up to --ram-limit-gb; a larger dataset stays in its cache file, memory-mapped, so
neither decoding nor training needs the whole dataset in memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import multiprocessing
import os
import tempfile
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import torch

from gan import images as imagefiles
from gan.config import DataConfig, RunConfig
from gan.device import cpu_cores
from gan.errors import GanError, first_line
from gan.files import atomic_write, human_size, save_torch
from gan.folders import check_folder, scan_folder
from gan.tracking import progress_bar

CACHE_VERSION = 3  # 2: pixels (N, 3, R, R) in a raw .u8 file beside the .pt index; 3: the index holds a checksum
_PARALLEL_MIN_FILES = 64  # below this, starting worker processes costs more than it saves
_MAX_CHUNK = 256  # images per task sent to a decoding process, and per step of a channel conversion
_IN_FLIGHT_BYTES = 256 * 2**20  # decoded pixels waiting in worker results, at most
_CHECKED_BLOCKS, _BLOCK_BYTES = 64, 4096  # what the cache checksum reads of a pixel file: 256 KiB, spread evenly


@dataclass
class ImageDataset:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64 index into class_names
    class_names: list[str]
    files: list[str]  # relative to the data folder, one per image
    fingerprint: str = ""  # hash of the file list, sizes and modification times: tells a resume the data changed

    def __len__(self) -> int:
        return len(self.files)

    @property
    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.class_names)).tolist()


def load_dataset(cfg: DataConfig, log: Callable[[str], None] = print) -> ImageDataset:
    """Scan, decode (or read from the cache) and check the images under `cfg.path`; report what was skipped."""
    root = check_folder(cfg.path)
    files, labels, class_names = scan_folder(root, log)
    listing = _listing(root, files, labels)
    cache = _cache_path(cfg, root, listing)
    mapped = len(files) * _bytes_per_image(cfg.resolution) > cfg.ram_limit_gb * 2**30
    decoded = _read_cache(cache, mapped, log) if cfg.cache else None
    if decoded is None:
        decoded = _decode_and_cache(cfg, root, files, labels, cache if cfg.cache else None, mapped, log)
    _report(decoded, len(files), cfg.resolution, log)
    if not decoded["files"]:
        raise GanError(
            f"no usable image in {root}: all {len(files)} image files were skipped (reasons above). "
            f"Supported formats: {imagefiles.FORMATS}."
        )
    channels = cfg.channels or (1 if bool(decoded["gray"].all()) else 3)
    dataset = ImageDataset(
        images=_to_channels(decoded["images"], channels),
        labels=decoded["labels"],
        class_names=class_names,
        files=decoded["files"],
        fingerprint=hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:20],
    )
    for name, count in zip(class_names, dataset.class_counts):
        if count == 0:
            log(f"warning: class folder {name!r} has no usable image")
    return dataset


def _bytes_per_image(resolution: int) -> int:
    return 3 * resolution * resolution


def _decoded_in_order(cfg: DataConfig, paths: list[str]) -> Iterator[imagefiles.Decoded]:
    """Every file decoded, in order: in worker processes when there are enough files, with a few chunks in flight
    at a time so that memory stays bounded however many files there are."""
    decode = functools.partial(
        imagefiles.decode_or_reason, resolution=cfg.resolution, background=cfg.background, max_pixels=cfg.max_pixels
    )
    workers = cfg.workers or cpu_cores()
    if workers == 1 or len(paths) < _PARALLEL_MIN_FILES:
        yield from map(decode, paths)
        return
    in_flight = 4 * workers  # chunks
    per_chunk = _IN_FLIGHT_BYTES // (in_flight * _bytes_per_image(cfg.resolution))
    chunk = max(1, min(_MAX_CHUNK, per_chunk, len(paths) // (workers * 8)))
    # spawn: never fork a process that holds torch's thread pools.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque = deque()
        for start in range(0, len(paths), chunk):
            pending.append(pool.submit(imagefiles.decode_each, decode, paths[start : start + chunk]))
            if len(pending) >= in_flight:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _decode_all(cfg: DataConfig, root: Path, files: list[Path], labels: list[int], into: BinaryIO | None) -> dict:
    """Decode every file once and collect the skip reasons. Pixels (N, 3, R, R) go into a RAM array, or, with
    `into`, are appended to that file as they come (the caller maps it), so RAM holds only images in flight."""
    shape = (cfg.resolution, cfg.resolution)
    pixels = None if into is not None else np.empty((len(files), 3, *shape), np.uint8)
    kept, gray, skipped, upscaled = [], [], [], 0
    results = _decoded_in_order(cfg, [str(f) for f in files])
    # The bar first: zip stops at its shortest input, and a bar asked for no further item never reaches 100%.
    for r, f, label in zip(progress_bar(len(files), f"decoding {root.name}", "img", iterable=results), files, labels):
        name = f.relative_to(root).as_posix()
        if r.reason is not None:
            skipped.append([name, r.reason])
            continue
        chw = r.pixels.transpose(2, 0, 1)
        if into is not None:
            into.write(np.ascontiguousarray(chw).tobytes())
        else:
            pixels[len(kept)] = chw
        kept.append((name, label))
        gray.append(r.gray)
        upscaled += r.upscaled
    return {
        "images": None if into is not None else torch.from_numpy(pixels[: len(kept)]),
        "shape": [len(kept), 3, *shape],
        "gray": torch.tensor(gray, dtype=torch.bool),
        "labels": torch.tensor([label for _, label in kept], dtype=torch.int64),
        "files": [name for name, _ in kept],
        "skipped": skipped,
        "upscaled": upscaled,
    }


def _to_channels(rgb: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, C, H, W) uint8; one channel uses the ITU-R 601 luma weights, as PIL's 'L' does (even for
    images judged grey: a grey LA image composited onto a coloured background is not)."""
    if channels == 3:
        return rgb
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = torch.empty((rgb.shape[0], 1, *rgb.shape[2:]), dtype=torch.uint8)
    for start in range(0, len(rgb), _MAX_CHUNK):  # a chunk at a time: no float copy of the whole dataset
        chunk = rgb[start : start + _MAX_CHUNK].float()
        luma[start : start + _MAX_CHUNK] = (chunk * weights).sum(1, keepdim=True).round().clamp(0, 255)
    return luma


def _report(decoded: dict, total: int, resolution: int, log: Callable[[str], None]) -> None:
    for file, reason in decoded["skipped"]:
        log(f"skipped {file}: {reason}")
    count = len(decoded["files"])
    summary = f"{count} image{'s' if count != 1 else ''} ready"
    if decoded["skipped"]:
        summary += f", {len(decoded['skipped'])} of {total} files skipped"
    if decoded["upscaled"]:
        summary += f", {decoded['upscaled']} smaller than {resolution} px were upscaled"
    log(summary)


# --- the decoded-image cache ---------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gan"


def _listing(root: Path, files: list[Path], labels: list[int]) -> list:
    """What identifies the data without reading it: names, sizes, modification times, labels."""
    listing = []
    for f, label in zip(files, labels):
        try:
            stat = f.stat()
        except OSError:  # a dangling link, skipped when decoded: its own entry still tells this data from another
            stat = f.lstat()
        listing.append([f.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns, label])
    return listing


def _cache_path(cfg: DataConfig, root: Path, listing: list) -> Path:
    """A file named by a hash of everything that changes the decoded pixels: the file listing and the settings."""
    key = json.dumps(
        {
            "version": CACHE_VERSION,
            "root": str(root.resolve()),
            "files": listing,
            "resolution": cfg.resolution,
            "background": cfg.background,
            "max_pixels": cfg.max_pixels,
        }
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(cfg.cache_dir or default_cache_dir()).expanduser() / f"{root.resolve().name}-{digest}.pt"


def _read_cache(path: Path, mapped: bool, log) -> dict | None:
    if not path.exists():
        return None
    try:
        decoded = torch.load(path, weights_only=True)
        pixels = path.with_suffix(".u8")
        if _checksum(pixels) != decoded["checksum"]:
            raise ValueError(f"{pixels.name} no longer holds the pixels it was written with")
        decoded["images"] = _open_pixels(pixels, decoded["shape"], mapped)
    except Exception as error:  # a damaged cache is rebuilt, never fatal
        log(f"warning: ignoring unreadable cache {path} ({first_line(error)}); decoding again")
        return None
    log(f"loaded decoded images from cache {path}{' (memory-mapped)' if mapped else ''}")
    return decoded


def _checksum(file: Path) -> str:
    """A hash of the size and of blocks spread evenly over a pixel file: it catches a file replaced or rewritten
    (other bytes of the same size included) while reading 256 KiB of it, so the second start stays quick."""
    size = file.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(file, "rb") as pixels:
        for block in range(_CHECKED_BLOCKS + 1):  # the +1th reads the file's last bytes
            pixels.seek(max(0, min(size * block // _CHECKED_BLOCKS, size - _BLOCK_BYTES)))
            digest.update(pixels.read(_BLOCK_BYTES))
    return digest.hexdigest()


def _open_pixels(file: Path, shape: list[int], mapped: bool) -> torch.Tensor:
    """The (N, 3, R, R) uint8 pixels of a cache file: read into RAM, or memory-mapped copy-on-write (pages are
    read on first use and can be dropped again; nothing written to the tensor reaches the file)."""
    size = math.prod(shape)
    if file.stat().st_size != size:
        raise ValueError(f"{file.name} holds {file.stat().st_size} bytes, expected {size}")
    if not size:
        return torch.zeros(shape, dtype=torch.uint8)
    if mapped:
        return torch.from_numpy(np.memmap(file, np.uint8, mode="c", shape=tuple(shape)))
    return torch.from_numpy(np.fromfile(file, np.uint8).reshape(shape))


def _decode_and_cache(cfg: DataConfig, root: Path, files: list[Path], labels: list[int], cache: Path | None,
                      mapped: bool, log) -> dict:
    """Decode, then write the cache (if `cache`); a mapped dataset is decoded straight into its pixel file,
    which is a temporary one when there is no cache."""
    if cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            _cache_unwritable(cache.parent, error, log)
            cache = None
    if not mapped:
        decoded = _decode_all(cfg, root, files, labels, into=None)
        if cache:
            _write_cache(cache, decoded, lambda tmp: decoded["images"].numpy().tofile(tmp), log)
        return decoded
    pixels = _decoding_file(cache.parent if cache else Path(cfg.cache_dir or default_cache_dir()).expanduser(), log)
    try:
        with pixels:
            try:
                decoded = _decode_all(cfg, root, files, labels, into=pixels)
                pixels.flush()
            except OSError as error:
                needed = human_size(len(files) * _bytes_per_image(cfg.resolution))
                raise GanError(f"cannot write the decoded images to {pixels.name} ({error.strerror}): free some space "
                               f"there, or point --cache-dir at a disk with {needed} free") from None
        # Mapped before the file is renamed into the cache (or removed below): the mapping follows the file itself.
        decoded["images"] = _open_pixels(Path(pixels.name), decoded["shape"], mapped=True)
        if cache:
            _write_cache(cache, decoded, lambda tmp: os.replace(pixels.name, tmp), log)
    finally:
        Path(pixels.name).unlink(missing_ok=True)
    return decoded


def _decoding_file(folder: Path, log) -> BinaryIO:
    """A hidden temporary file to decode a large dataset into: in the cache folder (a disk, unlike a tmpfs /tmp,
    which is RAM), else in the system's temporary folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return tempfile.NamedTemporaryFile(dir=folder, prefix=".decoding-", suffix=".u8", delete=False)
    except OSError as error:
        log(f"warning: cannot decode into {folder} ({error}); using the system's temporary folder instead")
        return tempfile.NamedTemporaryFile(prefix=".decoding-", suffix=".u8", delete=False)


def _write_cache(path: Path, decoded: dict, write_pixels: Callable[[Path], None], log) -> bool:
    """The pixel file, then the small index that names its shape (so an index never points at missing pixels)."""
    index = {key: value for key, value in decoded.items() if key != "images"}
    try:
        atomic_write(path.with_suffix(".u8"), write_pixels)
        try:
            index["checksum"] = _checksum(path.with_suffix(".u8"))
            save_torch(index, path)
        except BaseException:  # no pixel file without its index: nothing would ever use or remove it
            path.with_suffix(".u8").unlink(missing_ok=True)
            raise
        return True
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as RuntimeError
        _cache_unwritable(path.parent, error, log)
        return False


def _cache_unwritable(folder: Path, error: Exception, log) -> None:
    """A read-only or full cache folder only costs the next run its head start."""
    log(f"warning: could not write the image cache in {folder} ({error}); use --cache-dir or --no-cache")


def training_images(trained: RunConfig, why: str, log: Callable[[str], None] = print) -> ImageDataset:
    """The images a run was trained on, as it saw them (from the decoded cache when it is there)."""
    if not Path(trained.data.path).is_dir():
        raise GanError(f"{why} needs the run's training images, but {trained.data.path} is no longer there: put "
                       f"them back at that path")
    return load_dataset(trained.data, log)
