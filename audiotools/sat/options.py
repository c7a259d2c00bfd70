"""stable-audio-tools' training options: its `defaults.ini` and `train.py` flags, typed.

SAT's `train.py` reads `defaults.ini` (section `[DEFAULTS]`) and lets kebab-case flags
(`--batch-size 8`) override it; the same keys are accepted here, with the ranges and choices SAT
and PyTorch Lightning document, so a bad value is refused before anything is converted. Values
not given anywhere take the defaults of SAT's current `defaults.ini`.
"""
from __future__ import annotations

import argparse
import configparser
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, ValidationError, field_validator

from ..config import Section
from ..errors import ConfigError

SECTION = "DEFAULTS"
# How SAT writes an unset value, and the keys that may be unset.
_UNSET = ("", "none", "None", "null")
_OPTIONAL = ("ckpt_path", "pretrained_ckpt_path", "pretransform_ckpt_path", "model_config_path",
             "dataset_config", "val_dataset_config", "save_dir", "project", "num_gpus",
             "remove_pretransform_weight_norm", "logger")


class TrainingOptions(Section):
    """Every key of SAT's defaults.ini (plus `num_gpus` of older versions)."""

    name: str = "stable_audio_tools"
    project: str | None = None
    batch_size: PositiveInt = 4
    recover: bool = False
    save_top_k: int = Field(-1, ge=-1)
    num_nodes: PositiveInt = 1
    num_gpus: PositiveInt | None = None
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true"] = "auto"
    precision: Literal["32", "16", "bf16", "16-mixed", "bf16-mixed"] = "16-mixed"
    num_workers: NonNegativeInt = 6
    seed: NonNegativeInt = 42
    accum_batches: PositiveInt = 1
    checkpoint_every: PositiveInt = 10000
    val_every: int = -1
    ckpt_path: str | None = None
    pretrained_ckpt_path: str | None = None
    pretransform_ckpt_path: str | None = None
    # `model_config` is a reserved name in pydantic: the field is renamed, the key is not.
    model_config_path: str | None = Field(None, alias="model_config")
    dataset_config: str | None = None
    val_dataset_config: str | None = None
    save_dir: str | None = None
    gradient_clip_val: float = Field(0.0, ge=0.0)
    remove_pretransform_weight_norm: Literal["pre_load", "post_load"] | None = None
    logger: Literal["wandb", "comet"] | None = "wandb"

    @field_validator(*_OPTIONAL, mode="before")
    @classmethod
    def _unset_is_none(cls, value: Any) -> Any:
        """SAT writes unset values as '' (`project = None`; `logger = ''` means no logger)."""
        return None if isinstance(value, str) and value.strip() in _UNSET else value

    @field_validator("strategy", mode="before")
    @classmethod
    def _no_deepspeed(cls, value: Any) -> Any:
        if value == "":  # older defaults.ini: Lightning's own choice
            return "auto"
        if value == "deepspeed":
            raise ValueError("DeepSpeed is not supported: audiotools trains with DDP (`dora run "
                             "-d`, multi-node through `dora grid` on SLURM); use auto or ddp")
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("val_every")
    @classmethod
    def _val_every_not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("steps between validations must not be 0; use -1 for no "
                             "step-based validation, or a positive number of steps")
        return value


# The keys as SAT names them (defaults.ini, flags).
FIELDS = tuple(field.alias or name for name, field in TrainingOptions.model_fields.items())


def read_defaults_ini(path: str | Path) -> dict[str, str]:
    """The `[DEFAULTS]` keys of a SAT defaults.ini as text, quotes stripped."""
    path = Path(path)
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    try:
        found = parser.read(path, encoding="utf-8")
    except configparser.Error as error:
        raise ConfigError(f"{path}: not a valid ini file ({error}).") from None
    if not found:
        raise ConfigError(f"{path}: no such file (--defaults-ini).")
    if SECTION not in parser:
        raise ConfigError(f"{path}: no [{SECTION}] section (found: {parser.sections()}); "
                          "stable-audio-tools reads its keys from [DEFAULTS].")
    return {key: _unquote(value) for key, value in parser[SECTION].items()}


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def add_flags(parser: argparse.ArgumentParser) -> None:
    """SAT's train.py flags, kebab-case (`--batch-size`) and snake_case (`--batch_size`)."""
    group = parser.add_argument_group("stable-audio-tools options (override --defaults-ini)")
    group.add_argument("--defaults-ini", type=Path,
                       help="a stable-audio-tools defaults.ini ([DEFAULTS] section)")
    for key in FIELDS:
        names = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
        group.add_argument(*names, dest=key, default=None, metavar="VALUE")


def resolve(args: argparse.Namespace) -> TrainingOptions:
    """Options from SAT's defaults, then --defaults-ini, then the flags."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    ini_path = getattr(args, "defaults_ini", None)
    if ini_path is not None:
        for key, value in read_defaults_ini(ini_path).items():
            values[key] = value
            sources[key] = str(ini_path)
    for key in FIELDS:
        value = getattr(args, key, None)
        if value is not None:
            values[key] = value
            sources[key] = f"--{key.replace('_', '-')}"
    return validate(values, sources)


def validate(values: Mapping[str, Any], sources: Mapping[str, str]) -> TrainingOptions:
    """Typed options; one ConfigError naming each bad key, its value and where it came from."""
    try:
        return TrainingOptions.model_validate(dict(values))
    except ValidationError as error:
        lines = ["Invalid stable-audio-tools options:"]
        for item in error.errors():
            key = str(item["loc"][0]) if item["loc"] else "?"
            where = sources.get(key, "defaults")
            if item["type"] == "extra_forbidden":
                lines.append(f"  {key} ({where}): unknown key; valid keys: {', '.join(FIELDS)}.")
            else:
                message = item["msg"].removeprefix("Value error, ")
                lines.append(f"  {key} = {values.get(key)!r} ({where}): {message}.")
        raise ConfigError("\n".join(lines)) from None
