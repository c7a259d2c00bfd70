"""Where a conditioner's value comes from: an item's metadata, a template, or a default.

A dataset item's `info` (audiotools.data.segments) holds `path`, `seek_time`,
`seconds_start`, `seconds_total`, ... and `meta` (the manifest's metadata, from sidecar JSON).
A key is looked up in `meta` first, then in the info itself, so `seconds_total` works as a key
as `description` does.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError


class MissingValue(LookupError):
    """An item lacks `key`; the conditioner turns it into its default or a ConfigError."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def item_name(info: Mapping[str, Any]) -> str:
    """How errors name an item: its audio file."""
    return str(info.get("path", "<an item without a path>"))


def lookup(info: Mapping[str, Any], key: str) -> Any:
    """The item's `key` from its metadata, then its info (None counts as absent)."""
    meta = info.get("meta") or {}
    value = meta.get(key)
    if value is None and key != "meta":
        value = info.get(key)
    if value is None:
        raise MissingValue(key)
    return value


def missing_error(conditioner: str, info: Mapping[str, Any], key: str) -> ConfigError:
    return ConfigError(
        f"conditioner {conditioner!r}: item {item_name(info)} has no {key!r} (looked up in its "
        f"meta, then its info); add it to the item's metadata or set "
        f"conditioners.{conditioner}.default.")


def as_text(value: Any) -> str:
    """Metadata as prompt text: a list (instruments) reads "a, b"."""
    if isinstance(value, list | tuple):
        return ", ".join(str(part) for part in value)
    return str(value)


class _Fields(dict):
    """The fields of one item, looked up as the template asks for them."""

    def __init__(self, info: Mapping[str, Any]):
        super().__init__()
        self.info = info

    def __missing__(self, key: str) -> Any:
        value = lookup(self.info, key)
        return as_text(value) if isinstance(value, list | tuple) else value


def fill_template(template: str, info: Mapping[str, Any], conditioner: str) -> str:
    """The template filled from the item; MissingValue names the first field it lacks."""
    try:
        return template.format_map(_Fields(info))
    except (ValueError, TypeError) as err:  # a format spec that does not fit the value
        raise ConfigError(f"conditioner {conditioner!r}: template {template!r} does not fit "
                          f"item {item_name(info)} ({err}).") from None
