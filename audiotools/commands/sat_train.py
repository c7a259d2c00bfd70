"""`audiotools train --model-config M.json --dataset-config D.json [SAT flags]`: stable-audio-tools'
`train.py` command line, run as the equivalent Dora XP in this process.

The recipe is written as solver/<family>/sat_<name>_<hash> (the hash covers everything
converted but the DataLoader workers, a machine's setting), so the same command finds the same
XP again, on any machine, and resumes it; a changed flag or config gives a new XP. (Named
sat_train: audiotools/train.py is the Dora main.)
"""
from __future__ import annotations

import argparse
import dataclasses
import os

NAME = "train"
HELP = ("Train from stable-audio-tools flags and JSON configs (as its train.py), as a "
        "resumable Dora XP.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sat import command
    command.add_arguments(parser)


def _make_visible(config_dir) -> None:
    """Let Hydra find the recipe: the project tree, or AUDIOTOOLS_CONFIG_PATH."""
    from ..environment import config_dirs
    from ..errors import ConfigError
    if config_dir.resolve() in [path.resolve() for path in config_dirs()]:
        return
    if os.environ.get("AUDIOTOOLS_CONFIG_PATH"):
        raise ConfigError(f"--config-dir={config_dir} is neither the project's config tree nor "
                          f"AUDIOTOOLS_CONFIG_PATH ({os.environ['AUDIOTOOLS_CONFIG_PATH']}).")
    os.environ["AUDIOTOOLS_CONFIG_PATH"] = f"file://{config_dir.resolve()}"


def run(args: argparse.Namespace) -> int:
    from ..environment import config_dirs
    from ..local_grid import run_xp
    from ..sat import command, recipe
    from ..train import main
    shells = config_dirs()  # the trees a later `dora run` from this shell searches
    _make_visible(args.config_dir)
    migration, name = command.convert_from_args(args)
    stem = recipe.train_stem(migration, name, args.config_dir, args.manifest_dir)
    written = recipe.write(migration, args.config_dir, stem, args.manifest_dir, reuse=True)
    # Printed for the shell, not for this process (which made --config-dir visible to itself).
    written = dataclasses.replace(written, command=recipe.dora_command(
        args.config_dir, migration.family, stem, shells))
    command.report(migration, written)
    # This machine's workers, whatever a reused recipe holds (outside the XP signature).
    workers = migration.dataset["num_workers"]
    xp = main.get_xp([f"solver={migration.family}/{stem}", f"dataset.num_workers={workers}"])
    print(f"XP {xp.sig} in {xp.folder}", flush=True)
    run_xp(xp)
    return 0
