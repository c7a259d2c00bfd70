"""`audiotools kfold solver=classifier/digits [overrides]`: every fold, one after another, on
this machine (no SLURM), each an ordinary resumable XP; then mean ± std of the best accuracy."""
from __future__ import annotations

import argparse

NAME = "kfold"
HELP = "Train every cross-validation fold in turn (resumable XPs) and summarise accuracy."
INTERRUPTED = ("; the same command goes on: finished folds are skipped, the interrupted one "
               "resumes from its last checkpoint")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="+",
                        help="solver=<recipe> and key=value overrides, as for `dora run`")
    parser.add_argument("--summary", action="store_true",
                        help="only print the summary of the fold XPs (e.g. launched by a grid)")


def run(args: argparse.Namespace) -> int:
    """Every fold in turn; a fold that fails is reported and the others still run (as in
    `audiotools grid`), the summary covers those that have results, and the exit status says
    whether any failed."""
    from .. import kfold
    from ..local_grid import run_reporting
    from ..train import main
    xps = [main.get_xp(argv) for argv in kfold.fold_argvs(args.overrides)]
    failed = 0
    if not args.summary:
        for xp in xps:
            print(f"Fold {xp.cfg.dataset.fold}: XP {xp.sig}", flush=True)
            failed += not run_reporting(xp, f"fold {xp.cfg.dataset.fold}, XP {xp.sig}")
    print(kfold.summary(kfold.results(xps)))
    return 1 if failed else 0
