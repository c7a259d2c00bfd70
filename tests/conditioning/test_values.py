"""Values from item metadata: keys, templates, defaults, and the errors that name the item."""
from __future__ import annotations

import pytest

from audiotools.conditioning import ConditionerSet
from audiotools.errors import ConfigError


def _prompt(tiny_t5, **section) -> ConditionerSet:
    return ConditionerSet({"prompt": {"type": "text", "model": str(tiny_t5), **section}}, dim=8)


def test_a_key_reads_the_meta_then_the_info(tiny_t5, music_items):
    conditioners = _prompt(tiny_t5, key="description")
    first = music_items[0]
    assert conditioners["prompt"].item_value(first) == first["meta"]["description"]
    seconds = ConditionerSet({"seconds_total": {"type": "number", "min": 0, "max": 64}}, dim=8)
    assert seconds["seconds_total"].item_value(first) == first["seconds_total"]


def test_a_template_fills_fields_from_meta_and_info(tiny_t5, music_items):
    conditioners = _prompt(
        tiny_t5, template="{ensemble} playing {genre} at {bpm} bpm: {instruments}, "
                          "{seconds_start:.0f} s of {seconds_total:.0f}")
    meta = music_items[0]["meta"]
    assert conditioners["prompt"].item_value(music_items[0]) == (
        f"{meta['ensemble']} playing {meta['genre']} at {meta['bpm']} bpm: "
        f"{', '.join(meta['instruments'])}, 2 s of 16")


def test_a_missing_key_names_the_item_and_the_key(tiny_t5, music_items):
    item = {**music_items[0], "meta": {"genre": "chorale"}}
    for conditioners in (_prompt(tiny_t5, key="description"),
                         _prompt(tiny_t5, template="{ensemble} playing {genre}")):
        with pytest.raises(ConfigError) as caught:
            conditioners([item])
        message = str(caught.value)
        assert item["path"] in message and "conditioners.prompt.default" in message
        assert "'description'" in message or "'ensemble'" in message


def test_a_configured_default_replaces_a_missing_value(tiny_t5, music_items):
    item = {**music_items[0], "meta": {}}
    assert _prompt(tiny_t5, template="{genre}", default="music")["prompt"].item_value(
        item) == "music"
    conditioners = ConditionerSet({"bpm": {"type": "int", "min": 40, "max": 200,
                                           "default": 120}}, dim=4)
    assert conditioners["bpm"].item_value(item) == 120


def test_a_format_that_does_not_fit_the_value_is_an_error(tiny_t5, music_items):
    with pytest.raises(ConfigError, match=r"template '\{genre:.2f\}' does not fit item"):
        _prompt(tiny_t5, template="{genre:.2f}")(music_items[:1])
