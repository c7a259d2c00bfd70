"""What `audiotools migrate` and `audiotools train` share: SAT's flags plus audiotools' own,
the conversion, and its report on the console. Declaring the flags imports nothing heavy, so
`--help` answers at once; the conversion is imported when it runs."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..environment import CONFIG_DIR
from ..errors import ConfigError
from . import options as sat_options
from .options import DEFAULT_MANIFEST_DIR

if TYPE_CHECKING:
    from .migration import Migration
    from .recipe import Written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sat_options.add_flags(parser)
    own = parser.add_argument_group("audiotools options")
    own.add_argument("--config-dir", type=Path, default=CONFIG_DIR,
                     help=f"config tree to write the recipe into (default {CONFIG_DIR}; "
                          "another one needs AUDIOTOOLS_CONFIG_PATH=file://DIR for dora)")
    own.add_argument("--manifest-dir", default=DEFAULT_MANIFEST_DIR,
                     help="where the manifests of audio_dir datasets go, one folder per "
                          f"recipe (default {DEFAULT_MANIFEST_DIR})")
    own.add_argument("--epochs", type=int, default=100,
                     help="epochs of checkpoint_every updates (SAT trains until stopped; "
                          "default 100)")
    own.add_argument("--workers", type=int, default=8,
                     help="threads scanning audio_dir datasets (default 8)")


def convert_from_args(args: argparse.Namespace) -> tuple[Migration, str]:
    """The migration and the run name, from the command line."""
    if args.epochs < 1:
        raise ConfigError(f"--epochs={args.epochs}: give at least 1.")
    if args.workers < 1:
        raise ConfigError(f"--workers={args.workers}: give at least 1.")
    from .migration import convert
    options = sat_options.resolve(args)
    migration = convert(options, args.epochs, args.workers)
    return migration, options.name


def report(migration: Migration, written: Written) -> None:
    for rejection in migration.rejected:
        print(f"rejected {rejection.path}: {rejection.reason}")
    for line in migration.notes.lines():
        print(line)
    if migration.parameters:
        print("Parameters of the converted model:")
        for part, count in migration.parameters.items():
            print(f"  {part}: {count:,}")
    for kind, path in written.files.items():
        print(f"wrote {kind}: {path}")
    print(f"Run it with:\n  {written.command}")
