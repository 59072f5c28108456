"""Fixtures: every test runs offline, with a private cache, on tiny image folders (16-px images, a few steps, CPU)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from helpers import tiny_config, write_images


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test downloads anything: a download fails as it does with no network (tests that serve a file on
    127.0.0.1 put torch's downloader back)."""
    import gan.features

    def no_network(url, *args, **kwargs):
        raise OSError(errno.ENETUNREACH, "Network is unreachable (the tests run offline)", url)

    monkeypatch.setattr(gan.features, "fetch_url", no_network)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def flat_folder(tmp_path) -> Path:
    folder = tmp_path / "flat"
    write_images(folder, 10)
    return folder


@pytest.fixture
def class_folder(tmp_path) -> Path:
    folder = tmp_path / "classes"
    write_images(folder / "cats", 6, seed=1)
    write_images(folder / "dogs", 5, seed=2)
    return folder


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory) -> Path:
    """A two-step conditional run on 'cats' and 'dogs' (shared by a test module)."""
    from gan.train import train

    base = tmp_path_factory.mktemp("conditional")
    write_images(base / "pets" / "cats", 6, seed=1)
    write_images(base / "pets" / "dogs", 2, seed=2)
    return train(tiny_config(base / "pets", base / "runs", steps=2), log=lambda _: None).run_dir
