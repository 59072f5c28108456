"""How a config field declares itself: its flag and help, the values it takes, and whether it fixes the networks'
shape. The command-line flags (gan.cli), the checks and the comparison of a checkpoint's shape all read these
declarations, so a new knob costs one field plus its use.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Iterator

from PIL import ImageColor

from gan.errors import GanError


class Values(typing.Protocol):
    """What a field takes (its `within`): it says whether it admits a value, and names itself for the message."""

    def admits(self, value) -> bool: ...


@dataclass(frozen=True)
class Range:
    """The numbers a field takes: from `low` (excluded when `low_open`) up to `high` (excluded when `high_open`;
    None: no limit). `zero` names what 0 means when 0 is accepted too, e.g. 'off' or 'auto'."""

    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    zero: str = ""

    def admits(self, value: float) -> bool:
        if self.zero and value == 0:
            return True
        above_low = value > self.low if self.low_open else value >= self.low
        below_high = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above_low and below_high

    def __str__(self) -> str:
        low = _number(self.low)
        if self.high is not None:
            high = _number(self.high)
            text = (f"above {low} and at most {high}" if self.low_open else
                    f"in [{low}, {high}{')' if self.high_open else ']'}")
        elif self.low_open:
            text = "positive" if self.low == 0 else f"above {low}"
        else:
            text = "more" if self.low == 0 and self.zero else f"{low} or more"
        return f"0 ({self.zero}) or {text}" if self.zero else text


def _number(value: float) -> str:
    """1000000, not 1e+06; 0.05 as it is."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class PowerOfTwo:
    """Powers of two from `low` to `high`: the image sizes a DCGAN doubles its way up to (beyond `high`, tensor
    sizes overflow before any estimate of memory could refuse them)."""

    low: int
    high: int

    def admits(self, value: int) -> bool:
        return self.low <= value <= self.high and not value & (value - 1)

    def __str__(self) -> str:
        return (f"a power of two from {self.low} to {self.high} "
                f"({', '.join(str(self.low << i) for i in range(4))} ... {self.high})")


class Colour:
    """The colours PIL knows: names like white, and #rrggbb."""

    def admits(self, value: str) -> bool:
        try:
            ImageColor.getrgb(value)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return "a colour: a name like white, or #rrggbb"


_DURATION = re.compile(r"(\d+)([hms])")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


def seconds(duration: str) -> int:
    """'1h30m' -> 5400; '' -> 0 (no limit). Call it on values Duration admits."""
    return sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION.findall(duration))


class Duration:
    """A time span as people write it: 30m, 2h, 1h30m, 90s ('' when `empty` names what no limit means)."""

    def __init__(self, empty: str = ""):
        self.empty = empty

    def admits(self, value: str) -> bool:
        if not value:
            return bool(self.empty)
        return bool(re.fullmatch(r"(\d+[hms])+", value)) and 0 < seconds(value) <= 7 * 86400

    def __str__(self) -> str:
        text = "a time such as 30m, 2h, 1h30m or 90s, up to 7 days"
        return f"{text} ('' for {self.empty})" if self.empty else text


POSITIVE = Range(0, low_open=True)
COUNT = Range(0)  # 0 or more
FRACTION = Range(0, 1)
DECAY = Range(0, 1, high_open=True)  # Adam betas and moving averages: 1 would never move
WEIGHT = Range(0, low_open=True, zero="off")  # a loss term's weight
WORKERS = Range(1, 64, zero="auto")  # each decoding process holds about 70 MB: more than 64 only costs memory


def option(default, help: str, choices: tuple | None = None, flag: str | None = None, within: Values | None = None,
           shape: bool = False):
    """A config field that is also a command-line flag (`--field-name` unless `flag` says otherwise).

    `within`: the values it takes (a Range, PowerOfTwo ...); `shape`: it changes the networks' tensors, so a checkpoint only resumes or
    samples with the same value. A list default makes a repeatable flag (`--class a --class b`)."""
    metadata = {"help": help, "choices": choices, "flag": flag, "within": within, "shape": shape}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def derived(default_factory):
    """A config field filled in by the program (e.g. from the data), saved in config.json but not a flag."""
    return field(default_factory=default_factory)


def flag_of(declared: dataclasses.Field) -> str:
    """The command-line flag of a config field: its `flag`, or from its name (z_dim -> --z-dim)."""
    return declared.metadata.get("flag") or "--" + declared.name.replace("_", "-")


@functools.cache
def field_types(cls) -> dict[str, type]:
    """The types a config class's fields are annotated with, resolved once per class (validation reads them often)."""
    return typing.get_type_hints(cls)


def settings(cfg) -> Iterator[tuple[object, dataclasses.Field]]:
    """Every (config, field) of `cfg` and of the configs nested in it, in declaration order."""
    for declared in dataclasses.fields(cfg):
        value = getattr(cfg, declared.name)
        if dataclasses.is_dataclass(value):
            yield from settings(value)
        else:
            yield cfg, declared


def check_declared(cfg) -> None:
    """What the fields declare: every int a whole number, every float a finite one (NaN and inf pass any
    comparison), every choice one of its choices, every number within its range."""
    for owner, declared in settings(cfg):
        value, flag = getattr(owner, declared.name), flag_of(declared)
        if field_types(type(owner))[declared.name] is int and not isinstance(value, int):
            raise GanError(f"{flag} must be a whole number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise GanError(f"{flag} must be a finite number, got {value}")
        choices, within = declared.metadata.get("choices"), declared.metadata.get("within")
        if choices and value not in choices:
            raise GanError(f"{flag} must be one of {', '.join(map(str, choices))}, got {value!r}")
        if within and not within.admits(value):
            raise GanError(f"{flag} must be {within}, got {value!r}")


def shape_settings(cfg) -> Iterator[tuple[object, dataclasses.Field]]:
    return ((owner, declared) for owner, declared in settings(cfg) if declared.metadata.get("shape"))


def shape_differences(saved, wanted) -> list[str]:
    """Human-readable list of shape settings that differ, e.g. ['--g-channels 64 in the checkpoint, 128 now']."""
    differences = []
    for (before, declared), (now, _) in zip(shape_settings(saved), shape_settings(wanted)):
        old, new = getattr(before, declared.name), getattr(now, declared.name)
        if old != new:
            differences.append(f"{flag_of(declared)} {old} in the checkpoint, {new} now")
    return differences


def to_dict(cfg) -> dict:
    """Plain nested dict of a config, ready for JSON or a checkpoint."""
    return dataclasses.asdict(cfg)


def from_dict(cls, values: dict):
    """Rebuild a config dataclass from `to_dict` output; unknown keys mean a config from another version."""
    hints = field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise GanError(f"config has settings this version does not know: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        kwargs[name] = from_dict(kind, value) if dataclasses.is_dataclass(kind) else value
    return cls(**kwargs)
