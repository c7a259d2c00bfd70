"""Typed reads of the values in a stable-audio-tools config. SAT reads them as Python does
(`float(x)`, `for a, b, c in x`), so a value of the wrong type fails there with a traceback
naming neither the key nor the file; here each is one ConfigError naming the key (`where`)
and what would be valid, before anything is written."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError


def number(value: Any, where: str, *, low: float | None = None, high: float | None = None,
           above: float | None = None) -> float:
    """A finite real number (text that reads as one too, as SAT's float() takes it) within
    [low, high], and above `above` if given."""
    try:
        if isinstance(value, bool):
            raise ValueError
        result = float(value)
    except (TypeError, ValueError):
        result = math.nan
    valid = math.isfinite(result) and (low is None or result >= low) \
        and (high is None or result <= high) and (above is None or result > above)
    if not valid:
        bounds = [f">= {low:g}" if low is not None else "", f"<= {high:g}" if high is not None
                  else "", f"> {above:g}" if above is not None else ""]
        wanted = " and ".join(bound for bound in bounds if bound)
        raise ConfigError(f"{where}={value!r}: give a number{' ' + wanted if wanted else ''}.")
    return result


def whole(value: Any, where: str, *, low: int | None = None) -> int:
    """A whole number (2000 or 2000.0), at least `low`."""
    result = number(value, where, low=low)
    if not result.is_integer():
        raise ConfigError(f"{where}={value!r}: give a whole number"
                          f"{f' >= {low}' if low is not None else ''}.")
    return int(result)


def section(value: Any, where: str) -> dict[str, Any]:
    """A JSON object, as a copy the caller may change; absent (None) reads as an empty one."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: holds {type(value).__name__} {value!r}; give a JSON "
                          "object ({...}).")
    return dict(value)


def numbers(value: Any, where: str, count: int | None = None, **bounds: float) -> list[float]:
    """A JSON list of numbers (of `count` of them if given), each within `bounds`."""
    if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)) \
            or (count is not None and len(value) != count):
        size = f"{count} " if count is not None else ""
        raise ConfigError(f"{where}={value!r}: give a list of {size}numbers.")
    return [number(item, f"{where}[{index}]", **bounds) for index, item in enumerate(value)]


def objects(value: Any, where: str) -> list[Mapping[str, Any]]:
    """A JSON list of objects; absent reads as an empty one."""
    if value is None:
        return []
    if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}={value!r}: give a list of JSON objects.")
    return [section(item, f"{where}[{index}]") for index, item in enumerate(value)]
