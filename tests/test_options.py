"""Field declarations: ranges, choices and shape settings checked from where a field is declared; the JSON
round trip."""

import argparse
import json
from dataclasses import dataclass

import pytest

from gan.cli import add_config_flags, apply_flags
from gan.config import RunConfig
from gan.errors import GanError
from gan.options import (COUNT, DECAY, FRACTION, POSITIVE, WEIGHT, WORKERS, Colour, PowerOfTwo, Range, check_declared,
                         from_dict, option, shape_differences, to_dict)

def test_json_round_trip_keeps_every_setting():
    cfg = RunConfig()
    cfg.data.resolution, cfg.model.g_channels, cfg.train.g_lr = 32, 16, 1e-3
    cfg.data.class_names = ["a", "b"]
    back = from_dict(RunConfig, json.loads(json.dumps(to_dict(cfg))))
    assert back == cfg


def test_unknown_settings_are_named():
    values = to_dict(RunConfig())
    values["train"]["warp_speed"] = 9
    with pytest.raises(GanError, match="warp_speed"):
        from_dict(RunConfig, values)


def test_shape_differences_name_flag_and_both_values():
    saved, wanted = RunConfig(), RunConfig()
    wanted.model.g_channels = 128
    assert shape_differences(saved, wanted) == ["--g-channels 64 in the checkpoint, 128 now"]
    wanted.train.g_lr = 1.0  # not a shape setting
    assert len(shape_differences(saved, wanted)) == 1




@pytest.mark.parametrize("within, text, inside, outside", [
    (POSITIVE, "positive", [1e-9, 5], [0, -1]),
    (COUNT, "0 or more", [0, 3], [-1]),
    (FRACTION, "in [0, 1]", [0, 1], [-0.1, 1.1]),
    (DECAY, "in [0, 1)", [0, 0.999], [1, -0.5]),
    (WEIGHT, "0 (off) or positive", [0, 2.5], [-1e-9]),
    (WORKERS, "0 (auto) or in [1, 64]", [0, 4, 64], [-1, 65]),
    (Range(2, zero="auto"), "0 (auto) or 2 or more", [0, 2, 9], [1, -2]),
    (Range(0, 4, low_open=True), "above 0 and at most 4", [0.1, 4], [0, 4.5]),
    (Range(0.05, zero="off"), "0 (off) or 0.05 or more", [0, 0.05, 3], [0.01, -1]),
    (PowerOfTwo(16, 4096), "a power of two from 16 to 4096 (16, 32, 64, 128 ... 4096)", [16, 64, 4096], [8, 48, 0, 8192]),
    (Colour(), "a colour: a name like white, or #rrggbb", ["white", "#1a2b3c"], ["not-a-colour", "#12"]),
])
def test_a_range_admits_what_it_says(within, text, inside, outside):
    assert str(within) == text
    assert all(within.admits(value) for value in inside)
    assert not any(within.admits(value) for value in outside)


@dataclass
class _Knobs:
    """A config as a new knob would be added: one declaration each."""

    width: int = option(8, "a width", within=POSITIVE, shape=True)
    rate: float = option(0.5, "a rate", within=DECAY)
    mode: str = option("a", "a mode", ("a", "b"), flag="--the-mode")


def test_one_declaration_makes_the_flag_the_check_and_the_shape_comparison():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, _Knobs)
    knobs = _Knobs()
    apply_flags(knobs, parser.parse_args(["--width", "0", "--the-mode", "b"]))
    assert (knobs.width, knobs.mode) == (0, "b")
    with pytest.raises(GanError, match=r"^--width must be positive, got 0$"):
        check_declared(knobs)
    knobs.width, knobs.rate = 16, float("nan")
    with pytest.raises(GanError, match="^--rate must be a finite number, got nan$"):
        check_declared(knobs)
    knobs.rate, knobs.width = 0.9, 2.5  # configs made in code are checked as argparse checks flags
    with pytest.raises(GanError, match="^--width must be a whole number, got 2.5$"):
        check_declared(knobs)
    knobs.width, knobs.mode = 16, "c"
    with pytest.raises(GanError, match="^--the-mode must be one of a, b, got 'c'$"):
        check_declared(knobs)
    assert shape_differences(_Knobs(), _Knobs(width=16, rate=0.1)) == ["--width 8 in the checkpoint, 16 now"]


def test_nested_configs_are_checked_through():
    cfg = RunConfig()
    cfg.data.path, cfg.train.lecam_weight = "x", -1.0
    with pytest.raises(GanError, match=r"^--lecam-weight must be 0 \(off\) or positive, got -1.0$"):
        check_declared(cfg)
