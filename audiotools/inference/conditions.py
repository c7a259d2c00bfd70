"""What a generative pipeline's conditioners accept, and user values (command-line text, JSON)
turned into the typed values its `generate`/`continue_`/`inpaint` take.

One description (`describe_conditioners`) serves every front end: the command line lists it in
its errors, and a form can be built from it (a choice for options, a range for numbers). Values
are checked here, with messages that name the conditioner and what would be valid, rather than
deep inside the conditioners with messages written for training metadata.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..conditioning import ConditionerSet
from ..errors import ConfigError


@dataclass(frozen=True)
class ConditionerInfo:
    """One conditioner as a user sees it: its name, type and valid values."""

    name: str
    type: str                       # text, number, int, options, audio, or a user's own
    default: Any = None             # what it takes when not given (None: its null condition)
    options: tuple[str, ...] | None = None
    min: float | None = None        # number and int
    max: float | None = None
    seconds: float | None = None    # audio: the reference length it reads

    def describe(self) -> str:
        """`ensemble (options: a, b)`, `seconds_total (number in [0, 16])`, ..."""
        if self.type == "options":
            valid = f"options: {', '.join(map(repr, self.options or ()))}"
        elif self.type in ("number", "int"):
            valid = f"{self.type} in [{self.min:g}, {self.max:g}]"
        elif self.type == "audio":
            valid = f"audio file, first {self.seconds:g} s"
        else:
            valid = self.type
        default = "" if self.default is None else f", default {self.default!r}"
        return f"{self.name} ({valid}{default})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_conditioners(conditioners: ConditionerSet) -> list[ConditionerInfo]:
    """The conditioners of a pipeline (`pipeline.conditioners`), in their order."""
    infos = []
    for name in conditioners.names():
        config = conditioners[name].config
        infos.append(ConditionerInfo(
            name, config.type, getattr(config, "default", None),
            options=tuple(config.options) if config.type == "options" else None,
            min=getattr(config, "min", None), max=getattr(config, "max", None),
            seconds=getattr(config, "seconds", None)))
    return infos


def listing(infos: Sequence[ConditionerInfo]) -> str:
    """The conditioners for an error message; 'none' for an unconditional model."""
    return "; ".join(info.describe() for info in infos) or "none (an unconditional model)"


def text_conditioner(infos: Sequence[ConditionerInfo], option: str = "--prompt") -> str:
    """The name of the one text conditioner `option` sets; else an error listing them all."""
    texts = [info.name for info in infos if info.type == "text"]
    if len(texts) != 1:
        which = "no text conditioner" if not texts else f"{len(texts)} text conditioners"
        raise ConfigError(f"{option} gives the model's text conditioner, and it has {which}; "
                          f"give values with --condition NAME=VALUE instead. Conditioners: "
                          f"{listing(infos)}.")
    return texts[0]


def _by_name(infos: Sequence[ConditionerInfo], name: str, where: str) -> ConditionerInfo:
    for info in infos:
        if info.name == name:
            return info
    raise ConfigError(f"{where}: the model has no conditioner {name!r}. Conditioners: "
                      f"{listing(infos)}.")


def typed_value(info: ConditionerInfo, value: Any, where: str) -> Any:
    """`value` (text from a command line, or a JSON value) as the conditioner's type takes
    it; None stays None (the null condition). An audio conditioner's value (a path, or a
    clip from Python) and a conditioner type of a user's own are theirs to check, as given."""
    if value is None or info.type not in ("number", "int", "options", "text"):
        return value
    bad = f"{where}: {info.name}={value!r} is not valid; {info.describe()}."
    if info.type in ("number", "int"):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if info.type == "int":
                if not number.is_integer():
                    raise ValueError
                number = int(number)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(bad) from None
        if not (math.isfinite(number) and info.min <= number <= info.max):
            raise ConfigError(bad)
        return number
    if isinstance(value, Mapping | list | tuple):
        raise ConfigError(f"{bad} One value per conditioner: a batch is a list of value sets, "
                          "one per item.")
    text = str(value)
    if info.type == "options" and text not in (info.options or ()):
        raise ConfigError(bad)
    return text


def parse_assignments(assignments: Sequence[str], infos: Sequence[ConditionerInfo],
                      option: str = "--condition") -> dict[str, Any]:
    """`["ensemble=piano", "seconds_total=8"]` -> {"ensemble": "piano", "seconds_total": 8.0}."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"{option} {assignment!r}: expected NAME=VALUE. Conditioners: "
                              f"{listing(infos)}.")
        info = _by_name(infos, name, f"{option} {assignment!r}")
        values[name] = typed_value(info, text, f"{option} {assignment!r}")
    return values


def checked_values(values: Mapping[str, Any], infos: Sequence[ConditionerInfo],
                   where: str) -> dict[str, Any]:
    """Values by name (a JSON object, a form's fields) checked and typed."""
    return {name: typed_value(_by_name(infos, name, where), value, where)
            for name, value in values.items()}


def complete(values: Mapping[str, Any], infos: Sequence[ConditionerInfo]) -> dict[str, Any]:
    """A value for every conditioner: the given one, else its default, else None (its null
    condition, as an unconditional sample has)."""
    return {info.name: values.get(info.name, info.default) for info in infos}
