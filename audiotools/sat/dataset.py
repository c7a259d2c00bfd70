"""stable-audio-tools dataset configs to audiotools data sources.

- `audio_dir`: every `datasets[].path` is scanned once, as SAT scans it at each start (its audio
  extensions, recursively), into one manifest; unreadable files are reported.
- `wds` / `s3`: the WebDataset shards are listed now, as SAT lists them at each start (`.tar`
  files under a local `path`; `aws s3 ls --recursive` under an `s3_path`, streamed with
  `pipe:aws s3 cp ... -`); audiotools' shard reader takes SAT's shard layout as it is.
- `pre_encoded`: not read (SAT's own latent files); `audiotools pre-encode` makes audiotools'.

`custom_metadata_module` is checked (the file exists and defines `get_custom_metadata`) but not
run: it feeds conditioning, which autoencoder training does not read.
"""
from __future__ import annotations

import ast
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.manifest import Rejection, scan_tree
from ..errors import ConfigError
from .notes import Notes

DATASET_TYPES = ("audio_dir", "wds", "s3")
# The extensions SAT's get_audio_filenames looks for.
# What to do instead of SAT's pre-encoded datasets.
PRE_ENCODE = ("convert the audio dataset, encode it with `audiotools pre-encode CODEC DSET OUT` "
              "and train on `dataset.source=pre_encoded +dataset.pre_encoded=OUT`.")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".aif", ".opus")
# SAT's WebDataset options that change what a batch holds, with their defaults.
_WDS_DEFAULTS = {"remove_silence": False, "volume_norm": False, "pre_encoded": False}
_KNOWN_KEYS = {"dataset_type", "datasets", "random_crop", "drop_last", "epoch_steps",
               "resampled_shards", "silence_threshold", "max_silence_duration",
               "volume_norm_param", "latent_crop_length", *_WDS_DEFAULTS}
_ENTRY_KEYS = {"id", "path", "s3_path", "profile", "custom_metadata_module"}


@dataclass
class DataSource:
    """What one SAT dataset config yields: manifest entries or shard URLs."""

    label: str
    kind: str  # "files" or "shards"
    random_crop: bool
    entries: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    epoch_steps: int = 2000
    # `<where>.custom_metadata_module=<path>` of each entry that names one (checked, not run).
    metadata_modules: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.entries) if self.kind == "files" else len(self.shards)


def _check_metadata_module(path: str, where: str, source: DataSource) -> None:
    module = Path(path)
    if not module.is_file():
        raise ConfigError(f"{where}.custom_metadata_module={path!r}: no such file.")
    try:
        tree = ast.parse(module.read_text(encoding="utf-8"), str(module))
    except SyntaxError as error:
        raise ConfigError(f"{where}.custom_metadata_module={path!r} is not valid Python "
                          f"({error}).") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "get_custom_metadata"
               for node in tree.body):
        raise ConfigError(f"{where}.custom_metadata_module={path!r} defines no "
                          "get_custom_metadata(info, audio) function.")
    source.metadata_modules.append(f"{where}.custom_metadata_module={path!r}")


def _entries(config: Mapping[str, Any], where: str, notes: Notes) -> list[dict[str, Any]]:
    entries = config.get("datasets")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}.datasets must be a non-empty list of "
                          "{\"id\": ..., \"path\": ...} objects.")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "id" not in entry:
            raise ConfigError(f"{where}.datasets[{index}] needs an \"id\" (stable-audio-tools "
                              "requires it).")
        for key in ("path", "s3_path", "custom_metadata_module"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise ConfigError(f"{where}.datasets[{index}].{key}={entry[key]!r}: give a "
                                  "path as a string.")
        ignored = sorted(set(entry) - _ENTRY_KEYS)
        notes.unsupported_if(ignored, f"{where}.datasets[{index}] keys {ignored}: ignored (not "
                             "read by stable-audio-tools either)")
    return entries


def _audio_dir(config: Mapping[str, Any], source: DataSource, where: str, workers: int,
               notes: Notes) -> None:
    for index, entry in enumerate(_entries(config, where, notes)):
        label = f"{where}.datasets[{index}] ({entry['id']})"
        if "path" not in entry:
            raise ConfigError(f"{label}: \"path\" is missing (the folder of audio files).")
        if entry.get("custom_metadata_module"):
            _check_metadata_module(entry["custom_metadata_module"], label, source)
        root = Path(entry["path"]).expanduser()
        if not root.is_dir():
            raise ConfigError(f"{label}: path {str(root)!r} is not a folder.")
        found, rejected = scan_tree(root, workers, suffixes=AUDIO_SUFFIXES)
        source.entries += found
        source.rejections += rejected
    if not source.entries:
        raise ConfigError(f"{where}: no usable audio file ({', '.join(AUDIO_SUFFIXES)}) under "
                          f"the dataset paths ({len(source.rejections)} rejected).")


def _s3_shards(s3_path: str, profile: str | None, label: str) -> list[str]:
    """Shard URLs under `s3_path`, listed with the AWS CLI as SAT lists them."""
    if not s3_path.startswith("s3://"):
        raise ConfigError(f"{label}: s3_path={s3_path!r} must start with s3://.")
    if shutil.which("aws") is None:
        raise ConfigError(f"{label}: listing {s3_path} needs the AWS CLI (`aws`) on PATH, as "
                          "stable-audio-tools does; or write the shard URLs into the dset "
                          "file's `shards:` yourself.")
    profile_args = ["--profile", profile] if profile else []
    command = ["aws", "s3", "ls", s3_path.rstrip("/") + "/", "--recursive", *profile_args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"{label}: `{shlex.join(command)}` failed: {result.stderr.strip()}")
    bucket = s3_path[len("s3://"):].split("/", 1)[0]
    keys = [line.split(maxsplit=3)[3] for line in result.stdout.splitlines()
            if len(line.split(maxsplit=3)) == 4 and line.rstrip().endswith(".tar")]
    return [f"pipe:aws s3 cp {shlex.quote(f's3://{bucket}/{key}')} -"
            + (f" --profile {shlex.quote(profile)}" if profile else "") for key in sorted(keys)]


def _webdataset(config: Mapping[str, Any], source: DataSource, where: str,
                notes: Notes) -> None:
    for key, default in _WDS_DEFAULTS.items():
        if config.get(key, default) != default:
            if key == "pre_encoded":
                raise ConfigError(f"{where}.pre_encoded=true: stable-audio-tools' pre-encoded "
                                  f"latents are not read; {PRE_ENCODE}")
            notes.unsupported.append(f"{where}.{key}={config[key]!r}")
    if config.get("resampled_shards", True):
        notes.difference(f"{where}.resampled_shards (SAT's default true): SAT draws shards with "
                         "replacement; audiotools reads each shard once per epoch, in an order "
                         "shuffled per epoch")
    for index, entry in enumerate(_entries(config, where, notes)):
        label = f"{where}.datasets[{index}] ({entry['id']})"
        if entry.get("custom_metadata_module"):
            _check_metadata_module(entry["custom_metadata_module"], label, source)
        if "s3_path" in entry:
            source.shards += _s3_shards(entry["s3_path"], entry.get("profile"), label)
        elif "path" in entry:
            root = Path(entry["path"]).expanduser()
            if not root.is_dir():
                raise ConfigError(f"{label}: path {str(root)!r} is not a folder of .tar shards.")
            source.shards += sorted(str(p) for p in root.rglob("*.tar")
                                    if not p.name.startswith("."))
        else:
            raise ConfigError(f"{label}: give \"s3_path\" (s3://...) or \"path\" (a folder).")
    if not source.shards:
        raise ConfigError(f"{where}: no .tar shard found under the dataset paths.")
    source.epoch_steps = int(config.get("epoch_steps", 2000))


def read_source(config: Mapping[str, Any], where: str, notes: Notes,
                workers: int = 8) -> DataSource:
    """Scan or list what an SAT dataset config points at."""
    kind = config.get("dataset_type")
    if kind == "pre_encoded":
        raise ConfigError(f"{where}: dataset_type=pre_encoded: stable-audio-tools' pre-encoded "
                          f"latents are not read; {PRE_ENCODE} Supported: "
                          f"{', '.join(DATASET_TYPES)}.")
    if kind not in DATASET_TYPES:
        raise ConfigError(f"{where}: dataset_type={kind!r}; stable-audio-tools types audiotools "
                          f"reads: {', '.join(DATASET_TYPES)} (not pre_encoded).")
    ignored = sorted(set(config) - _KNOWN_KEYS)
    notes.unsupported_if(ignored, f"{where} keys {ignored}: ignored (not read by "
                         "stable-audio-tools either)")
    notes.unsupported_if(not config.get("drop_last", True), f"{where}.drop_last=false: "
                         "audiotools drops the last partial training batch (SAT's default)")
    source = DataSource(where, "files" if kind == "audio_dir" else "shards",
                        random_crop=bool(config.get("random_crop", True)))
    if kind == "audio_dir":
        _audio_dir(config, source, where, workers, notes)
    else:
        _webdataset(config, source, where, notes)
    return source
