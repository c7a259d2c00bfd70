"""`audiotools shards MANIFEST OUTDIR`: pack a manifest's files into WebDataset tar shards."""
from __future__ import annotations

import argparse

NAME = "shards"
HELP = ("Write the files of MANIFEST (original bytes + their manifest entry as JSON) into "
        "OUTDIR/shard-NNNNNN.tar, with an index (OUTDIR/index.json) listing them.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="a manifest written by `audiotools manifest`, or a "
                                         "split index of a pre-encoded folder "
                                         "(OUT/train.jsonl of `audiotools pre-encode`)")
    parser.add_argument("outdir", help="folder for the shards (created if missing)")
    parser.add_argument("--samples-per-shard", type=int, default=1000,
                        help="files per shard (default 1000)")
    parser.add_argument("--force", action="store_true",
                        help="replace the shards OUTDIR already holds (refused otherwise)")


def run(args: argparse.Namespace) -> int:
    from ..data.manifest import read_manifest
    from ..data.pre_encoded import CODEC_FILE, write_encoded_shards
    from ..data.shards import write_shards
    from ..environment import resolve_path
    manifest, outdir = resolve_path(args.manifest), resolve_path(args.outdir)
    if (manifest.parent / CODEC_FILE).exists():  # a pre-encoded split: its tensors
        shards = write_encoded_shards(manifest.parent, manifest.name.removesuffix(".jsonl"),
                                      outdir, args.samples_per_shard, args.force)
        print(f"pre-encoded {manifest.stem} in {len(shards)} shards (and {CODEC_FILE}) → "
              f"{outdir}")
        return 0
    entries = read_manifest(manifest)
    shards = write_shards(entries, outdir, args.samples_per_shard, args.force)
    print(f"{len(entries)} files in {len(shards)} shards → {outdir}")
    return 0
