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

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from ..config import Section
from ..errors import ConfigError

# Where `migrate`/`train` write the manifests of audio_dir datasets (one folder per recipe).
DEFAULT_MANIFEST_DIR = "//reference/sat"

SECTION = "DEFAULTS"
# How SAT writes an unset value, and the keys that may be unset.
_UNSET = ("", "none", "None", "null")
_OPTIONAL = ("ckpt_path", "pretrained_ckpt_path", "pretransform_ckpt_path", "model_config_path",
             "dataset_config", "val_dataset_config", "save_dir", "project", "num_gpus",
             "remove_pretransform_weight_norm", "logger")


class TrainingOptions(Section):
    """Every key of SAT's defaults.ini (plus `num_gpus` of older versions)."""

    name: str = Field("stable_audio_tools", description="run name (the recipe name)")
    project: str | None = Field(None, description="W&B project (default: name)")
    batch_size: PositiveInt = Field(4, description="batch size per GPU")
    recover: bool = Field(False, description="resume the latest checkpoint (Dora always does)")
    save_top_k: int = Field(-1, ge=-1, description="checkpoints kept: -1 all, 0 none, k")
    num_nodes: PositiveInt = Field(1, description="nodes")
    num_gpus: PositiveInt | None = Field(None, description="GPUs per node (older SAT)")
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true"] = Field(
        "auto", description="auto | ddp (deepspeed is refused)")
    precision: Literal["32", "16", "bf16", "16-mixed", "bf16-mixed"] = Field(
        "16-mixed", description="32 | 16 | bf16 | 16-mixed | bf16-mixed")
    num_workers: NonNegativeInt = Field(6, description="DataLoader workers")
    seed: NonNegativeInt = Field(42, description="random seed")
    accum_batches: PositiveInt = Field(1, description="batches per optimizer update")
    checkpoint_every: PositiveInt = Field(10000, description="steps between checkpoints")
    val_every: int = Field(-1, description="steps between validations (-1: none; not 0)")
    ckpt_path: str | None = Field(None, description="training checkpoint to resume")
    pretrained_ckpt_path: str | None = Field(None, description="model checkpoint to start from")
    pretransform_ckpt_path: str | None = Field(None, description="pretransform checkpoint")
    # `model_config` is a reserved name in pydantic: the field is renamed, the key is not.
    model_config_path: str | None = Field(None, alias="model_config",
                                          description="model config JSON")
    dataset_config: str | None = Field(None, description="dataset config JSON")
    val_dataset_config: str | None = Field(None, description="validation dataset config JSON")
    save_dir: str | None = Field(None, description="checkpoint folder (XPs live in the Dora dir)")
    gradient_clip_val: float = Field(0.0, ge=0.0, description="gradient norm clipping (0: off)")
    remove_pretransform_weight_norm: Literal["pre_load", "post_load"] | None = Field(
        None, description="pre_load | post_load")
    logger: Literal["wandb", "comet"] | None = Field("wandb", description="wandb | comet | ''")

    # Where each given key came from: `--flag` or the defaults.ini path (see `chosen`).
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def chosen(self, key: str) -> bool:
        """Whether the user chose `key`: a flag, or a defaults.ini value that differs from
        SAT's default (SAT's own defaults.ini repeats its defaults, which nobody chose)."""
        source = self._sources.get(key)
        if source is None:
            return False
        return source.startswith("--") or \
            getattr(self, key) != type(self).model_fields[key].default

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
    group.add_argument("--defaults-ini", "--config-file", "--config_file", type=Path,
                       dest="defaults_ini",
                       help="a stable-audio-tools defaults.ini ([DEFAULTS] section); "
                            "--config-file is prefigure's name for it. Unlike SAT's train.py, "
                            "a defaults.ini in the current folder is read only when named")
    group.add_argument("--wandb-config", "--wandb_config", metavar="URL",
                       help="refused: prefigure pulls a run's config from W&B over the network; "
                            "give its values as flags or in --defaults-ini")
    for name, field in TrainingOptions.model_fields.items():
        key = field.alias or name
        names = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
        group.add_argument(*names, dest=key, default=None, metavar="VALUE",
                           help=f"{field.description} (default {field.default!r})")


def resolve(args: argparse.Namespace) -> TrainingOptions:
    """Options from SAT's defaults, then --defaults-ini, then the flags."""
    if getattr(args, "wandb_config", None):
        raise ConfigError(f"--wandb-config={args.wandb_config}: pulling a run's config from "
                          "W&B is not supported (it needs the network and the W&B run); give "
                          "its values as flags or in --defaults-ini.")
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
        options = TrainingOptions.model_validate(dict(values))
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
    options._sources = dict(sources)
    return options
