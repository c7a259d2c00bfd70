"""`audiotools pre-encode CODEC DSET OUT`: encode a dataset once with a frozen codec (latents,
or tokens for a discrete codec), so that latent and token models train on it directly. Files
already encoded in OUT are kept (a rerun resumes); OUT written by another codec is refused."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .arguments import add_device_argument, finite_float

NAME = "pre-encode"
HELP = ("Encode a dataset once with a codec (latents or tokens) for latent and token models; "
        "resumable.")
INTERRUPTED = "; the same command goes on from the files already encoded"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("codec", help="//recipe/autoencoder/NAME, //sig/SIG, an XP folder, an "
                                      "exported .safetensors, or a stable-audio-tools checkpoint")
    parser.add_argument("dset", help="a dset name (config/dset/NAME.yaml: each split's "
                                     "manifest) or a manifest .jsonl[.gz] (split 'train')")
    parser.add_argument("out", type=Path, help="output folder (created; resumed if it exists)")
    parser.add_argument("--chunk-seconds", type=finite_float, default=30.0,
                        help="encode long files in windows of this length (default 30)")
    add_device_argument(parser)
    parser.add_argument("--sat-model-config", type=Path,
                        help="the stable-audio-tools model config JSON of a SAT checkpoint")


def dset_splits(dset: str) -> dict[str, list[dict[str, Any]]]:
    """{split: manifest entries} of a dset name or a manifest path."""
    from omegaconf import OmegaConf

    from ..data.builders import SPLITS, read_manifests, resolve_data_path, split_config
    from ..data.manifest import read_manifest
    from ..environment import config_dirs
    from ..errors import ConfigError
    if dset.endswith((".jsonl", ".jsonl.gz")):
        return {"train": read_manifest(resolve_data_path(dset))}
    files = [folder / "dset" / f"{dset}.yaml" for folder in config_dirs()]
    found = [path for path in files if path.exists()]
    if not found:
        known = sorted({path.stem for folder in config_dirs()
                        for path in (folder / "dset").glob("*.yaml")})
        raise ConfigError(f"dset={dset!r}: no {' or '.join(map(str, files))}; known dsets: "
                          f"{', '.join(known)}; or give a manifest .jsonl.")
    section = OmegaConf.to_container(OmegaConf.load(found[-1]), resolve=True)
    splits = {}
    for split in SPLITS:
        merged = split_config(section, split)  # the split's keys over the section's
        if merged is None:
            continue
        manifest = merged.get("manifest")
        if manifest is None:
            raise ConfigError(f"{found[-1]}: split {split} has no manifest (pre-encode reads "
                              "manifests; write one with `audiotools manifest`).")
        splits[split] = read_manifests(manifest)
    return splits


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.pre_encoded import pre_encode
    from ..errors import ConfigError
    from ..io.codecs import load_codec
    if args.chunk_seconds <= 0:
        raise ConfigError(f"--chunk-seconds={args.chunk_seconds}: the window long files are "
                          "encoded in must be longer than 0 s.")
    options = {"sat_model_config": args.sat_model_config} if args.sat_model_config else {}
    codec = load_codec(args.codec, args.device, **options)
    splits = dset_splits(args.dset)

    def bar(files: Any, split: str) -> Any:
        return tqdm(list(files), desc=f"pre-encode {split}", unit="file")

    written = pre_encode(codec, splits, args.out, args.chunk_seconds, bar)
    counts = ", ".join(f"{split} {len(entries)}" for split, entries in splits.items())
    print(f"{written['kind']} of {counts} files at {written['frame_rate']:g} frames/s "
          f"-> {args.out} (codec {written['source']}, sha256 {written['identity'][:12]}...)")
    return 0
