"""`audiotools plot SIG... --out curves.png`: the training curves of XPs side by side, one
subplot per metric, to compare runs without starting TensorBoard."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

NAME = "plot"
HELP = "Plot the training curves of XPs (one subplot per metric, one line per XP) to a file."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("xps", nargs="+", metavar="SIG",
                        help="XP signature, //sig/SIG or XP folder (several: one line each)")
    parser.add_argument("--metric", action="append", metavar="NAME",
                        help="a stage.metric to plot, e.g. valid.loss (repeat for more; "
                             "default: the valid metrics all the XPs have)")
    parser.add_argument("--out", type=Path, required=True,
                        help="image to write (.png, .pdf, .svg)")
    parser.add_argument("--dora-dir", type=Path,
                        help="where the XPs live (default: AUDIOTOOLS_DORA_DIR, the team "
                             "file's, else ./outputs)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> int:
    from ..experiments import load_history, resolve_xp
    from ..plotting import figure_png, plot_curves
    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists; choose another path or pass --force.")
    histories, folders = {}, {}
    for source in args.xps:
        folder = resolve_xp(source, args.dora_dir)
        if folder.name in folders and folders[folder.name] != folder:
            raise ConfigError(f"{folders[folder.name]} and {folder} are both XP {folder.name}; "
                              "their curves would share a label: plot them one at a time.")
        folders[folder.name] = folder
        histories[folder.name] = load_history(folder)
    figure = plot_curves(histories, args.metric)
    figure_png(figure, args.out)
    metrics = [ax.get_title() for ax in figure.axes]
    print(f"Wrote {args.out}: {', '.join(metrics)} of {len(histories)} XP(s) "
          f"({', '.join(histories)}).")
    return 0
