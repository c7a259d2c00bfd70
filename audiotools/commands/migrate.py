"""`audiotools migrate --model-config M.json --dataset-config D.json [SAT flags] --name NAME`:
a stable-audio-tools run as an audiotools recipe (solver/<family>/NAME.yaml with its model
and dset files), printing what does not carry over and the `dora run` command. NAME is SAT's
run name (`--name`, or `name` in --defaults-ini)."""
from __future__ import annotations

import argparse

NAME = "migrate"
HELP = ("Convert a stable-audio-tools run (defaults.ini, flags, model and dataset JSON configs) "
        "into an audiotools recipe, listing what is not reproduced.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sat import command
    command.add_arguments(parser)
    parser.add_argument("--force", action="store_true",
                        help="overwrite existing recipe, model and dset files of that name")


def run(args: argparse.Namespace) -> int:
    from ..sat import command, recipe
    migration, name = command.convert_from_args(args)
    written = recipe.write(migration, args.config_dir, recipe.slug(name), args.manifest_dir,
                           force=args.force)
    command.report(migration, written)
    return 0
