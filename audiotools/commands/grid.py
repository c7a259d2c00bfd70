"""`audiotools grid NAME [--dry-run]`: the XPs of a Dora grid one after another on this machine
(no SLURM), each an ordinary resumable XP, then the table `dora grid NAME` shows and, for a
k-fold grid, mean ± std over the folds."""
from __future__ import annotations

import argparse

NAME = "grid"
HELP = "Run a Dora grid's XPs in turn on this machine (resumable), then print its table."
INTERRUPTED = ("; the same command goes on: finished XPs are skipped, the interrupted one "
               "resumes from its last checkpoint")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="grid name as for `dora grid`, e.g. classifier.kfold")
    parser.add_argument("--dry-run", action="store_true",
                        help="train nothing: list the XPs and print the table and summary of "
                             "what they hold now (also for a grid running on SLURM)")


def run(args: argparse.Namespace) -> int:
    from .. import kfold, local_grid
    explorer = local_grid.load_explorer(args.name)
    sheeps = local_grid.grid_sheeps(explorer)
    if not sheeps:
        from ..errors import ConfigError
        raise ConfigError(f"grid {args.name!r} launches no XP: its explorer calls the launcher "
                          "for none.")
    if not args.dry_run:
        local_grid.run_in_turn(sheeps)
    local_grid.print_table(explorer, sheeps)
    for group in kfold.fold_groups([sheep.xp for sheep in sheeps]):
        print()
        print(kfold.summary(kfold.results(group)))
    return 1 if any(sheep.local_state == "FAILED" for sheep in sheeps) else 0
