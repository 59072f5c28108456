"""One training step: its statistics by name, and what it advances."""

import math

import torch

from helpers import tiny_config, tiny_state, write_images
from gan.step import stacked, train_step


def _state(tmp_path, **train):
    write_images(tmp_path / "data", 8)
    cfg = tiny_config(tmp_path / "data", tmp_path / "runs")
    for name, value in train.items():
        setattr(cfg.train, name, value)
    return cfg, tiny_state(cfg)


def test_a_step_reports_its_statistics_by_name_as_finite_scalars(tmp_path):
    cfg, state = _state(tmp_path)
    stats = train_step(state, cfg, None, 1)
    assert {"Loss/D", "Loss/G", "D/real", "D/fake", "Loss/R1", "Loss/R2", "Augment/p"} <= set(stats)
    assert all(value.dim() == 0 and math.isfinite(value.item()) for value in stats.values())
    assert 0 < stats["D/real"].item() < 1 and 0 < stats["D/fake"].item() < 1


def test_a_step_advances_both_networks_and_the_streams(tmp_path):
    cfg, state = _state(tmp_path)
    G, D = (next(network.parameters()).clone() for network in (state.nets.G, state.nets.D))
    noise = state.noise.get_state()
    train_step(state, cfg, None, 1)
    assert not torch.equal(G, next(state.nets.G.parameters()))
    assert not torch.equal(D, next(state.nets.D.parameters()))
    assert not torch.equal(noise, state.noise.get_state())


def test_the_penalties_are_kept_between_the_steps_that_compute_them(tmp_path):
    cfg, state = _state(tmp_path, r1_gamma=1.0, r1_every=2)
    first = train_step(state, cfg, None, 1)
    second = train_step(state, cfg, None, 2)
    third = train_step(state, cfg, None, 3)
    assert first["Loss/R1"].item() == 0 and second["Loss/R1"].item() > 0
    assert third["Loss/R1"].item() == second["Loss/R1"].item()  # the latest one, not a zero


def test_stacked_gives_names_and_one_row_per_step():
    window = [{"a": torch.tensor(1.0), "b": torch.tensor(2)}, {"a": torch.tensor(3.0), "b": torch.tensor(4)}]
    names, values = stacked(window)
    assert names == ["a", "b"] and values.tolist() == [[1.0, 2.0], [3.0, 4.0]]
