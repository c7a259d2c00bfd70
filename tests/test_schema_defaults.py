"""The typed schema is the one source of defaults: every default the YAML tree states for a key
the schema owns equals the schema's, key by key (a drift fails here, not in an XP).

- config.yaml + solver/default.yaml state every shared key: they equal `SolverConfig`.
- solver/<family>/default.yaml: its keys of the sections the family adds (model, dataset,
  losses, ...) and adds to (valid, evaluate, generate) equal the family schema's defaults;
  shared keys it sets are the family's recipe choices (the autoencoder's learning rate, say).
  The generative families' default.yaml states every key of their own.
- model/<kind>/default.yaml equals the family's model schema.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from audiotools.config import SolverConfig
from audiotools.environment import CONFIG_DIR
from audiotools.families import FAMILIES, import_object


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _plain(value.model_dump())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _section_class(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def disagreements(schema: type[BaseModel], values: dict[str, Any], prefix: str = "",
                  skip: frozenset[str] = frozenset()) -> list[str]:
    """`key: schema default X, YAML Y` for every key of `values` whose schema default differs;
    unknown keys are reported too. Sections are compared key by key."""
    found = []
    for name, value in values.items():
        key = f"{prefix}{name}"
        if key in skip:
            continue
        field = schema.model_fields.get(name)
        if field is None:
            found.append(f"{key}: not in the schema {schema.__name__}")
            continue
        section = _section_class(field.annotation)
        if section is not None and isinstance(value, dict):
            found += disagreements(section, value, f"{key}.", skip)
            continue
        if field.default is PydanticUndefined and field.default_factory is None:
            continue  # mandatory: the YAML value is the only one
        default = _plain(field.get_default(call_default_factory=True))
        if default != _plain(value):
            found.append(f"{key}: schema default {default!r}, YAML {value!r}")
    return found


def _yaml(path: Path) -> dict[str, Any]:
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert isinstance(data, dict)
    return {k: v for k, v in data.items() if k not in ("defaults", "hydra")}


def test_shared_yaml_defaults_equal_the_schema_both_ways():
    shared = {**_yaml(CONFIG_DIR / "config.yaml"), **_yaml(CONFIG_DIR / "solver/default.yaml")}
    # dora and slurm sections are Dora's and submitit's (checked by them).
    assert disagreements(SolverConfig, shared, skip=frozenset({"dora", "slurm"})) == []
    assert sorted(set(SolverConfig.model_fields) - set(shared)) == []


# Shared keys whose sections a family schema extends with keys of its own (`every` stays the
# family's recipe choice).
EXTENDED = ("valid", "evaluate", "generate")


def _family_keys(name: str) -> dict[str, Any]:
    return {key: value for key, value in _yaml(CONFIG_DIR / "solver" / name / "default.yaml")
            .items() if key not in SolverConfig.model_fields or key in EXTENDED}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_default_recipe_equals_the_family_schema(name):
    schema = FAMILIES[name].config_class()
    skip = frozenset({"solver", *(f"{key}.every" for key in EXTENDED)})
    assert disagreements(schema, _family_keys(name), skip=skip) == []


def _unstated(schema: type[BaseModel], values: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys with a default in `schema` (sections key by key) that `values` does not state."""
    found = []
    for name, field in schema.model_fields.items():
        if field.default is PydanticUndefined and field.default_factory is None:
            continue
        if name not in values:
            found.append(f"{prefix}{name}")
            continue
        section = _section_class(field.annotation)
        if section is not None and isinstance(values[name], dict):
            found += _unstated(section, values[name], f"{prefix}{name}.")
    return found


# Families whose default.yaml states every key of their own (the generative ones, whose
# recipes are read as "the defaults plus what differs").
COMPLETE_DEFAULTS = ("diffusion", "musicgen")


@pytest.mark.parametrize("name", COMPLETE_DEFAULTS)
def test_family_default_recipe_states_every_key_of_its_own(name):
    schema = FAMILIES[name].config_class()
    own = {key: field for key, field in schema.model_fields.items()
           if key not in SolverConfig.model_fields or key in EXTENDED}
    values = _family_keys(name)
    missing = [key for key in _unstated(schema, values)
               if key.split(".")[0] in own and key not in {f"{k}.every" for k in EXTENDED}]
    assert missing == []


# config/model/<folder>/default.yaml of each family that has one.
MODEL_DEFAULTS = {"classifier": "cnn"}


@pytest.mark.parametrize("name", sorted(MODEL_DEFAULTS))
def test_model_default_files_equal_the_model_schemas(name):
    schema = import_object(FAMILIES[name].model_schema)
    path = CONFIG_DIR / "model" / MODEL_DEFAULTS[name] / "default.yaml"
    assert disagreements(schema, _yaml(path), "model.") == []


def test_the_comparison_reports_a_drift():
    assert disagreements(SolverConfig, {"seed": 7, "optim": {"lr": 3e-4, "nope": 1}}) == [
        "seed: schema default 42, YAML 7", "optim.nope: not in the schema OptimConfig"]
