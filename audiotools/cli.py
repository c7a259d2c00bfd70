"""The `audiotools` console script: one sub-command per module in `audiotools.commands`.

Each command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`,
and may define `INTERRUPTED`, what the Ctrl-C line adds (how to go on).
Training itself goes through `dora run`; these commands are the tools around it.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import AudiotoolsError

# Modules under audiotools.commands, in the order `audiotools --help` lists them.
COMMANDS: tuple[str, ...] = (
    "classify",
    "continue_",
    "export",
    "generate",
    "grid",
    "inpaint",
    "kfold",
    "manifest",
    "migrate",
    "plot",
    "pre_encode",
    "reconstruct",
    "sat_train",
    "shards",
    "ui",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audiotools", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMANDS:
        module = importlib.import_module(f"audiotools.commands.{module_name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run, _interrupted=getattr(module, "INTERRUPTED", ""))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except AudiotoolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path given: missing, not a folder, not writable, disk full
        print(f"error: {path_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"error: interrupted{args._interrupted}.", file=sys.stderr)
        return 130


def path_error(error: OSError) -> str:
    """What an OSError means for the path it names: mkdir of an output's folder where a file
    stands says "File exists", which reads as if the output itself were there."""
    if isinstance(error, FileExistsError | NotADirectoryError) and error.filename:
        return (f"{error.filename}: a file stands where a folder is needed for the output; "
                "choose another path or move the file.")
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
