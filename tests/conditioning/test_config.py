"""Conditioner sections: one schema per type, every fault named by its key."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from audiotools.conditioning import (
    ConditionersConfig,
    NumberConditionerConfig,
    OptionsConditionerConfig,
    TextConditionerConfig,
    validate_conditioners,
)
from audiotools.config import Section, validate_section
from audiotools.errors import ConfigError


def _error(section) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_conditioners(section)
    return str(caught.value)


def test_each_type_gets_its_own_section_from_yaml():
    section = OmegaConf.create("""
      prompt: {type: text, key: description, model: t5-base, max_length: 64}
      seconds_total: {type: number, min: 0, max: 512}
      ensemble: {type: options, options: [string quartet, piano], dropout: 0.1}
    """)
    configs = validate_conditioners(section)
    assert isinstance(configs["prompt"], TextConditionerConfig)
    assert configs["prompt"].max_length == 64 and configs["prompt"].key == "description"
    assert isinstance(configs["seconds_total"], NumberConditionerConfig)
    assert isinstance(configs["ensemble"], OptionsConditionerConfig)
    assert configs["ensemble"].dropout == 0.1 and configs["ensemble"].key is None


def test_an_unknown_key_is_named_with_its_conditioner():
    message = _error({"prompt": {"type": "text", "max_lenght": 64}})
    assert "conditioners.prompt.max_lenght: unknown key" in message


def test_an_unknown_or_missing_type_lists_the_valid_ones():
    assert "unknown type 'clap'; valid types: text, number, int, options, audio" in _error(
        {"prompt": {"type": "clap"}})
    assert "conditioners.bpm: no type" in _error({"bpm": {"min": 0, "max": 1}})


@pytest.mark.parametrize("section, expected", [
    ({"type": "number", "min": 5, "max": 5}, "min=5.0 must be below max=5.0"),
    ({"type": "number", "min": 0, "max": 1, "features": 7}, "features=7 must be even"),
    ({"type": "int", "min": 0, "max": 3, "default": 9}, "default=9 lies outside"),
    ({"type": "options", "options": ["a", "b"], "default": "c"}, "default='c' is not one of"),
    ({"type": "options", "options": ["a", "a"]}, "repeat a"),
    ({"type": "options", "options": []}, "conditioners.c.options"),
    ({"type": "text", "key": "description", "template": "{genre}"}, "not both"),
    ({"type": "text", "template": "no field"}, "needs at least one {field}"),
    ({"type": "text", "template": "{genre"}, "does not parse"),
    ({"type": "number", "min": 0, "max": 1, "dropout": 1.5}, "conditioners.c.dropout = 1.5"),
    ({"type": "audio"}, "conditioners.c.seconds: missing mandatory value"),
])
def test_rules_of_each_type(section, expected):
    assert expected in _error({"c": section})


def test_a_name_must_be_a_plain_identifier():
    message = _error({"bad.name": {"type": "int", "min": 0, "max": 1}})
    assert "conditioners: conditioner names ['bad.name'] must be identifiers" in message


def test_a_model_schema_holds_them_as_a_typed_field():
    class Model(Section):
        dim: int
        conditioners: ConditionersConfig = {}

    model = validate_section({"dim": 8, "conditioners": {"bpm": {"type": "int", "min": 40,
                                                                 "max": 200}}}, Model, "model")
    assert model.conditioners["bpm"].max == 200
    with pytest.raises(ConfigError, match="model.conditioners.bpm.maxx: unknown key"):
        validate_section({"dim": 8, "conditioners": {"bpm": {"type": "int", "min": 40,
                                                             "maxx": 200}}}, Model, "model")
