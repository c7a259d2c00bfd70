"""`audiotools kfold solver=classifier/digits [overrides]`: every fold, one after another, on
this machine (no SLURM), each an ordinary resumable XP; then mean ± std of the best accuracy."""
from __future__ import annotations

import argparse

NAME = "kfold"
HELP = "Train every cross-validation fold in turn (resumable XPs) and summarise accuracy."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="+",
                        help="solver=<recipe> and key=value overrides, as for `dora run`")
    parser.add_argument("--summary", action="store_true",
                        help="only print the summary of the fold XPs (e.g. launched by a grid)")


def run(args: argparse.Namespace) -> int:
    from .. import kfold
    from ..local_grid import run_xp
    from ..train import main
    xps = [main.get_xp(argv) for argv in kfold.fold_argvs(args.overrides)]
    if not args.summary:
        for xp in xps:
            print(f"Fold {xp.cfg.dataset.fold}: XP {xp.sig}", flush=True)
            run_xp(xp)
    print(kfold.summary(kfold.results(xps)))
    return 0
