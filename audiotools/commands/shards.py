"""`audiotools shards MANIFEST OUTDIR`: pack a manifest's files into WebDataset tar shards."""
from __future__ import annotations

import argparse

NAME = "shards"
HELP = ("Write the files of MANIFEST (original bytes + their manifest entry as JSON) into "
        "OUTDIR/shard-NNNNNN.tar, with an index (OUTDIR/index.json) listing them.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="a manifest written by `audiotools manifest`")
    parser.add_argument("outdir", help="folder for the shards (created if missing)")
    parser.add_argument("--samples-per-shard", type=int, default=1000,
                        help="files per shard (default 1000)")


def run(args: argparse.Namespace) -> int:
    from ..data.manifest import read_manifest
    from ..data.shards import write_shards
    from ..environment import resolve_path
    entries = read_manifest(resolve_path(args.manifest))
    shards = write_shards(entries, resolve_path(args.outdir), args.samples_per_shard)
    print(f"{len(entries)} files in {len(shards)} shards → {resolve_path(args.outdir)}")
    return 0
