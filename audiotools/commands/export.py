"""`audiotools export SIG OUT.safetensors`: the best (EMA) weights of an XP, config embedded."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "Export an XP's best weights as safetensors with its config in the metadata."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="XP signature, //sig/SIG, XP folder or checkpoint.th")
    parser.add_argument("out", type=Path, help="output .safetensors file (must not exist)")


def run(args: argparse.Namespace) -> int:
    from ..families import FAMILIES
    from ..io.export import export_checkpoint
    path, family = export_checkpoint(args.source, args.out)
    print(f"Exported {args.source} to {path}")
    if family not in FAMILIES:
        print(f"Note: its solver {family} is not one of audiotools' families "
              f"({', '.join(FAMILIES)}): the export holds its weights and config for your own "
              "code, and audiotools' commands (classify, generate, ui, ...) do not load it.")
    return 0
