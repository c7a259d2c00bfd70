"""The docs say what the code does: every command, flag and config key the docs show exists, and
every flag, shared config key and environment variable the code has is documented.

The docs are read as a user reads them: `audiotools <command> ...` and `dora <command> ...`
wherever they appear in code (fenced blocks and inline spans), the key tables of
docs/configuration.md and docs/data.md. A flag of `audiotools C` counts as documented when it
appears in a section (the text under one heading) that names `audiotools C`; stable-audio-tools'
own flags count when their key (`batch_size` for `--batch-size`) is in docs/stable_audio_tools.md.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest
from omegaconf import OmegaConf
from pydantic import BaseModel

from audiotools import environment
from audiotools.cli import build_parser
from audiotools.config import SolverConfig
from audiotools.families import FAMILIES, config_schema
from audiotools.sat.options import FIELDS as SAT_FIELDS
from tests.conftest import REPO, TOY_CONFIG

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# Recipes the docs show users writing themselves (they exist in no config tree).
EXAMPLE_RECIPES = {"mine/base", "autoencoder/my_vae", "diffusion/sa2"}
# Global options of dora that come before its command, and those that take a value.
DORA_GLOBAL_WITH_VALUE = {"-P", "--package", "--main_module"}
SEPARATORS = re.compile(r"&&|\|\||[;|]")
# Long options of other programs the docs quote: pip, tensorboard, sbatch (Dora's --mem),
# torchrun, `aws s3`.
EXTERNAL_FLAGS = {"--index-url", "--logdir", "--mem", "--nnodes", "--node-rank",
                  "--nproc-per-node", "--standalone", "--profile", "--recursive"}
# Options of the project's scripts/, checked against the script's text.
SCRIPT_FLAGS = {"--sat-python": REPO / "scripts" / "check_sat_autoencoder_parity.py"}


@dataclass
class Usage:
    """One command line the docs show: `audiotools kfold ...` or `dora run ...`."""

    path: Path
    program: str        # "audiotools" or "dora"
    command: str
    args: list[str]

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}: {self.program} {self.command} {' '.join(self.args)}"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _split_fenced(text: str) -> tuple[list[str], str]:
    """Fenced code blocks (continuation lines joined) and the prose around them."""
    blocks, prose, current, inside = [], [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if inside:
                blocks.append("\n".join(current).replace("\\\n", " "))
                current = []
            inside = not inside
            prose.append("")
            continue
        (current if inside else prose).append(line)
    return blocks, "\n".join(prose)


def _code(text: str) -> list[str]:
    """Every piece of code in a markdown text: fenced blocks, then inline spans."""
    blocks, prose = _split_fenced(text)
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    return blocks + spans


def _command_lines(code: str) -> Iterator[list[str]]:
    """Shell commands of a piece of code, as tokens, comments dropped."""
    for line in code.splitlines():
        line = re.sub(r"(^|\s)#.*", "", line)
        for part in SEPARATORS.split(line):
            tokens = [token.strip("[](),`'\"") for token in part.split()]
            yield [token for token in tokens if token]


def _usages_in(code: str, path: Path) -> Iterator[Usage]:
    for tokens in _command_lines(code):
        for index, token in enumerate(tokens):
            if token == "audiotools" and (index == 0 or tokens[index - 1] not in
                                          DORA_GLOBAL_WITH_VALUE):
                rest = tokens[index + 1:]
                if rest and re.fullmatch(r"[a-z][a-z_-]*", rest[0]):
                    yield Usage(path, "audiotools", rest[0], rest[1:])
            elif token == "dora":
                rest = tokens[index + 1:]
                while rest and rest[0].startswith("-"):
                    rest = rest[2:] if rest[0] in DORA_GLOBAL_WITH_VALUE else rest[1:]
                if rest and re.fullmatch(r"[a-z]+", rest[0]):
                    yield Usage(path, "dora", rest[0], rest[1:])


def _usages() -> list[Usage]:
    return [usage for path in DOCS for code in _code(_text(path))
            for usage in _usages_in(code, path)]


def _flags(args: list[str]) -> list[str]:
    """The options of a command line, `--flag=value` as `--flag`; `-1` is a value."""
    return [arg.split("=", 1)[0] for arg in args
            if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", arg)]


def _overrides(args: list[str]) -> list[tuple[str, str]]:
    """`key=value` overrides (`+key=value` included), placeholders left out."""
    found = []
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.lstrip("+~").split("=", 1)
        placeholder = "..." in value or "<" in value or value == "value"
        if not re.fullmatch(r"[A-Za-z_][\w./]*", key) or placeholder:
            continue
        found.append((key, value))
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions
            if action.option_strings and not isinstance(action, argparse._HelpAction)]


def _audiotools_commands() -> dict[str, argparse.ArgumentParser]:
    return _subparsers(build_parser())


def _dora_commands() -> dict[str, argparse.ArgumentParser]:
    from dora.__main__ import get_parser
    return _subparsers(get_parser())


# ------------------------------------------------------------------ schema walking
def _sections(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _sections(arg)]


def _has_key(schema: type[BaseModel], key: str) -> bool:
    """Whether the dotted `key` is a field of `schema` (through unions such as the encoder
    types, and into open mappings such as `dora`)."""
    models = [schema]
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        if not fields:
            return False
        if depth == len(parts) - 1:
            return True
        models = [model for field in fields for model in _sections(field.annotation)]
        if not models:  # a plain mapping (dora, slurm): its keys are not typed
            return any(dict in (field.annotation, getattr(field.annotation, "__origin__", None))
                       for field in fields)
    return True


def _leaves(schema: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in schema.model_fields.items():
        sections = _sections(field.annotation)
        if sections:
            yield from _leaves(sections[0], f"{prefix}{name}.")
        elif prefix or name not in ("dora", "slurm"):
            yield f"{prefix}{name}"


def _root_yaml() -> Any:
    return OmegaConf.load(REPO / "config" / "config.yaml")


def _in_root_yaml(key: str) -> bool:
    node = _root_yaml()
    for part in key.split("."):
        if not (OmegaConf.is_dict(node) and part in node):
            return False
        node = node[part]
    return True


def _table_keys(path: Path, first_header: str) -> list[str]:
    """The backticked keys of the first column of every table whose first header cell is
    `first_header` (several per cell allowed)."""
    keys, in_table = [], False
    for line in _text(path).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            in_table = False
            continue
        if cells[0] == first_header:
            in_table = True
            continue
        if in_table and not set(cells[0]) <= set("-: "):
            keys += re.findall(r"`([^`]+)`", cells[0])
    return keys


# ------------------------------------------------------------------ commands and flags
def test_the_docs_show_commands_at_all():
    """Guards the parsing itself: an empty result would make every other test pass."""
    usages = _usages()
    assert {"audiotools", "dora"} == {usage.program for usage in usages}
    assert len(usages) > 50


def _unknown_commands_and_flags(program: str, commands: dict[str, Any]) -> list[str]:
    """Documented `<program> <command> --flag` usages the parsers do not have."""
    wrong = []
    for usage in _usages():
        if usage.program != program:
            continue
        parser = commands.get(usage.command)
        if parser is None:
            wrong.append(f"{usage.where()}: {program} has no command {usage.command!r}")
            continue
        known = {option for action in _options(parser) for option in action.option_strings}
        wrong += [f"{usage.where()}: {program} {usage.command} has no {flag}"
                  for flag in _flags(usage.args) if flag not in known | {"-h", "--help"}]
    return wrong


def test_every_documented_audiotools_command_and_flag_exists():
    wrong = _unknown_commands_and_flags("audiotools", _audiotools_commands())
    assert not wrong, "\n".join(wrong)


def test_every_documented_dora_command_and_flag_exists():
    wrong = _unknown_commands_and_flags("dora", _dora_commands())
    assert not wrong, "\n".join(wrong)


def test_every_long_option_quoted_anywhere_exists():
    """Options quoted in prose (`--chunk-seconds S`), not only in full command lines."""
    known = {option for commands in (_audiotools_commands(), _dora_commands())
             for parser in commands.values() for action in _options(parser)
             for option in action.option_strings}
    wrong = set()
    for path in DOCS:
        for code in _code(_text(path)):
            for flag in re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", code):
                script = SCRIPT_FLAGS.get(flag)
                if flag in known or flag in EXTERNAL_FLAGS or (script and flag in _text(script)):
                    continue
                wrong.add(f"{path.relative_to(REPO)}: {flag}")
    assert not wrong, "\n".join(sorted(wrong))


def _sections_of(path: Path) -> Iterator[str]:
    """The text under each heading (code blocks included; a `#` comment in code is no
    heading)."""
    current: list[str] = []
    inside = False
    for line in _text(path).splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif not inside and line.startswith("#"):
            yield "\n".join(current)
            current = []
        current.append(line)
    yield "\n".join(current)


def test_every_flag_of_every_command_is_documented():
    sat_doc = _text(REPO / "docs" / "stable_audio_tools.md")
    blocks = [section for path in DOCS for section in _sections_of(path)]
    missing = []
    for name, parser in _audiotools_commands().items():
        about = [block for block in blocks if re.search(rf"audiotools {name}\b", block)]
        if not about:
            missing.append(f"audiotools {name}: not documented at all")
        for action in _options(parser):
            if action.dest in SAT_FIELDS and f"`{action.dest}`" in sat_doc:
                continue  # SAT's own flag: its key is in the defaults.ini table
            pattern = "|".join(re.escape(option) for option in action.option_strings)
            if not any(re.search(rf"(?<![\w-])({pattern})(?![\w-])", block) for block in about):
                missing.append(f"audiotools {name} {'/'.join(action.option_strings)}")
    assert not missing, "undocumented (say what it does next to `audiotools <command>`):\n" \
        + "\n".join(missing)


# ------------------------------------------------------------------ config keys
@pytest.fixture
def recipes(monkeypatch) -> set[str]:
    monkeypatch.setenv("AUDIOTOOLS_CONFIG_PATH", f"file://{TOY_CONFIG}")
    return set(environment.available_recipes()) | EXAMPLE_RECIPES


def _schema_for(solver: str | None) -> list[type[BaseModel]]:
    family = solver.split("/")[0] if solver else None
    if family in FAMILIES:
        return [config_schema(family)]
    return [SolverConfig, *(config_schema(name) for name in FAMILIES)]


def test_every_documented_override_names_a_recipe_file_or_key(recipes):
    wrong = []
    for usage in _usages():
        if not ((usage.program == "dora" and usage.command == "run")
                or (usage.program == "audiotools" and usage.command == "kfold")):
            continue
        overrides = _overrides(usage.args)
        solver = dict(overrides).get("solver")
        for key, value in overrides:
            if key == "solver":
                ok = value in recipes
            elif "/" in key or key == "dset":  # a config group: its file must exist
                ok = (REPO / "config" / key / f"{value}.yaml").exists()
            elif key.split(".")[0] in ("dora", "slurm", "hydra"):
                ok = _in_root_yaml(key)
            else:
                ok = any(_has_key(schema, key) for schema in _schema_for(solver))
            if not ok:
                wrong.append(f"{usage.where()}: {key}={value}")
    assert not wrong, "\n".join(wrong)


def test_configuration_tables_list_real_keys_and_every_shared_key():
    path = REPO / "docs" / "configuration.md"
    documented = _table_keys(path, "Key")
    assert len(documented) > 40
    wrong = [key for key in documented
             if not (_in_root_yaml(key) if key.split(".")[0] in ("dora", "slurm", "hydra")
                     else _has_key(SolverConfig, key))]
    assert not wrong, f"docs/configuration.md documents keys that do not exist: {wrong}"
    missing = sorted(set(_leaves(SolverConfig)) - set(documented))
    assert not missing, f"shared keys missing from docs/configuration.md: {missing}"


def test_configuration_names_every_registered_family():
    row = next(line for line in _text(REPO / "docs" / "configuration.md").splitlines()
               if line.startswith("| `solver` |"))
    assert not [name for name in FAMILIES if f"`{name}`" not in row]


def test_dset_table_lists_real_dataset_keys():
    from audiotools.data.builders import AudioDataConfig
    keys = _table_keys(REPO / "docs" / "data.md", "key")
    assert len(keys) > 10
    assert not [key for key in keys if not _has_key(AudioDataConfig, key)]


def test_every_environment_variable_is_documented():
    read = {name for path in (REPO / "audiotools").rglob("*.py")
            for name in re.findall(r"AUDIOTOOLS_[A-Z_]+", path.read_text(encoding="utf-8"))}
    docs = "\n".join(_text(path) for path in DOCS)
    assert read and not sorted(name for name in read if name not in docs)
