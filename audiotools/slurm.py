"""The SLURM settings a grid submits with, and where each comes from.

Later wins: Dora's defaults, `slurm:` in config/config.yaml, `slurm:` in the team file, the
`dora grid` flags (-p, -g, --constraint, -c), then the grid's own `launcher.slurm_(...)`. The
team file is checked here, so a typo fails before anything is submitted.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import typing
from typing import Any

from dora.conf import SlurmConfig
from pydantic import TypeAdapter, ValidationError

from . import environment
from .errors import ConfigError

_TYPES = typing.get_type_hints(SlurmConfig)
# null partition = the cluster's default partition (submitit then passes no --partition).
_TYPES["partition"] = str | None
# Dora passes --mem=<mem_per_gpu * gpus>GB, and sbatch refuses a fraction ("1.5GB").
_TYPES["mem_per_gpu"] = int
SLURM_KEYS = tuple(_TYPES)


def with_team_settings(base: SlurmConfig) -> SlurmConfig:
    """`base` (from config.yaml) with the team file's `slurm:` section applied over it."""
    settings: dict[str, Any] = environment.slurm_defaults()
    if not settings:
        return base
    path = environment.team_file()
    unknown = sorted(set(settings) - set(SLURM_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown slurm key(s) {unknown}; valid keys are "
                          f"{', '.join(SLURM_KEYS)} (Dora's SlurmConfig).")
    for key, value in settings.items():
        try:
            TypeAdapter(_TYPES[key]).validate_python(value, strict=True)
        except ValidationError as error:
            expected = getattr(_TYPES[key], "__name__", str(_TYPES[key]))
            raise ConfigError(f"{path}: slurm.{key}={value!r} is not a valid {expected} "
                              f"({error.errors()[0]['msg']}).") from None
    return dataclasses.replace(base, **settings)


def check_clear(argv: list[str]) -> None:
    """`dora grid NAME --clear` deletes the grid's XP folders before it submits them again:
    refused, with nothing deleted, when no SLURM cluster answers here (the submission would
    fail after the deletion). Read as Dora reads it, abbreviations (`--cl`) included."""
    import contextlib
    import io

    from dora.__main__ import get_parser
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args, _ = get_parser().parse_known_args(list(argv))
    except SystemExit:  # not a command line Dora takes: it refuses it itself
        return
    if not getattr(args, "clear", False) or getattr(args, "dry_run", False):
        return
    sinfo = shutil.which("sinfo")
    try:
        answered = sinfo is not None and subprocess.run(
            [sinfo, "-h"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        answered = False
    if not answered:
        raise ConfigError("--clear deletes the grid's XP folders before submitting them again, "
                          "and no SLURM cluster answers here (sinfo), so nothing was deleted. "
                          "Without a cluster, run the grid with `audiotools grid NAME`; to "
                          "restart one XP, move its folder aside yourself.")
