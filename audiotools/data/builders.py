"""Datasets of every split from a `dataset` config section (config/dset/*.yaml).

Top-level keys are defaults; a split's own keys override them. `source: files` reads a manifest,
`source: shards` streams WebDataset shards; the items are the same, so solvers do not care which.
Train draws random segments (per seed and epoch); the other splits use fixed segments.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig
from pydantic import Field
from torch.utils.data import Dataset

from ..config import Section, validate_section
from ..environment import resolve_path
from ..errors import ConfigError
from .manifest import read_manifest
from .pre_encoded import (
    EncodedShardDataset,
    PreEncodedDataset,
    check_same_codec,
    read_codec_file,
)
from .segments import SegmentDataset
from .shards import CODEC_FILE, ShardDataset

SPLITS = ("train", "valid", "evaluate", "generate")


class SplitConfig(Section):
    """Keys a split may set for itself (train/valid/evaluate/generate); unset keys come from
    the top level of the `dataset` section."""

    source: Literal["files", "shards", "pre_encoded"] | None = None
    # One manifest, or several read as one (e.g. two shipped sets).
    manifest: str | list[str] | None = None
    shards: str | list[str] | None = None
    # A folder written by `audiotools pre-encode` (source: pre_encoded): latents or tokens;
    # with `shards` too, its codec.json, and the data streamed from those shards.
    pre_encoded: str | None = None
    sample_rate: int | None = Field(None, ge=1)
    channels: int | None = Field(None, ge=1)
    segment_duration: float | None = Field(None, gt=0.0)
    min_segment_ratio: float | None = Field(None, gt=0.0, le=1.0)
    num_samples: int | None = Field(None, ge=1)
    weighted: bool | None = None
    random_segments: bool | None = None
    return_info: bool | None = None
    segments_per_file: int | None = Field(None, ge=1)
    shuffle_buffer: int | None = Field(None, ge=1)


class AudioDataConfig(SplitConfig):
    """The `dataset` section of audio solvers (config/dset/*.yaml), checked before any file
    is read so a typo in a key is an error, not a silently ignored setting. Its defaults are
    the ones every split inherits unless it sets its own."""

    source: Literal["files", "shards", "pre_encoded"] = "files"
    min_segment_ratio: float = Field(0.5, gt=0.0, le=1.0)
    weighted: bool = False
    return_info: bool = True
    segments_per_file: int = Field(1, ge=1)
    shuffle_buffer: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1)
    num_workers: int = Field(0, ge=0)
    train: SplitConfig | None = None
    valid: SplitConfig | None = None
    evaluate: SplitConfig | None = None
    generate: SplitConfig | None = None


def shadowed_defaults(settings: AudioDataConfig) -> list[str]:
    """`dataset.key=value` for each top-level key set away from its default that every
    defined split sets for itself: no split reads it (e.g. `+dataset.manifest=` over a
    dset whose splits each name their manifest)."""
    splits = [own for own in (getattr(settings, s) for s in SPLITS) if own is not None]
    shadowed = []
    for name in SplitConfig.model_fields:
        value = getattr(settings, name)
        default = type(settings).model_fields[name].get_default(call_default_factory=True)
        if (value is not None and value != default and splits
                and all(getattr(own, name) is not None for own in splits)):
            shadowed.append(f"dataset.{name}={value!r}")
    return shadowed


def read_manifests(manifest: str | list[str]) -> list[dict[str, Any]]:
    """The entries of a `manifest` key: one manifest, or several in order."""
    paths = [manifest] if isinstance(manifest, str) else list(manifest)
    return [entry for path in paths for entry in read_manifest(resolve_data_path(path))]


def resolve_data_path(path: str) -> str:
    """Local paths go through `resolve_path` (//datasets/, //reference/, //sig/, ~);
    URLs and `pipe:` commands pass as given."""
    if "://" in path or path.startswith("pipe:"):
        return path
    return str(resolve_path(path))


def split_config(cfg: Mapping[str, Any], split: str) -> dict[str, Any] | None:
    """A split's keys over the section's top-level ones (None: the split is not defined)."""
    own = cfg.get(split)
    if own is None:
        return None
    merged = {k: v for k, v in cfg.items() if k not in SPLITS}
    merged.update(own)
    if merged.get("random_segments") is None:
        merged["random_segments"] = split == "train"
    return merged


def _require(cfg: dict[str, Any], key: str, split: str) -> Any:
    if cfg.get(key) is None:
        raise ConfigError(f"dataset.{split}.{key} (or dataset.{key}) must be set.")
    return cfg[key]


def _sampling(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Which segments a split draws: the options every kind of split dataset takes."""
    return dict(seed=seed, random_segments=bool(cfg["random_segments"]),
                num_samples=cfg.get("num_samples"),
                min_segment_ratio=float(cfg["min_segment_ratio"]),
                return_info=bool(cfg["return_info"]))


def _shard_urls(cfg: dict[str, Any], split: str) -> list[str]:
    spec = _require(cfg, "shards", split)
    return [resolve_data_path(s) for s in ([spec] if isinstance(spec, str) else spec)]


def _streaming(cfg: dict[str, Any]) -> dict[str, Any]:
    return dict(segments_per_file=int(cfg["segments_per_file"]),
                shuffle_buffer=int(cfg["shuffle_buffer"]), weighted=bool(cfg["weighted"]))


def _local_shard_folders(spec: str | list[str]) -> list[Path]:
    """The local folders a `shards` key names (URLs and patterns aside)."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    return [path for path in (Path(resolve_data_path(s)) for s in specs) if path.is_dir()]


def build_split(cfg: dict[str, Any], split: str, seed: int) -> Dataset:
    """One split's dataset from its merged keys (the section's defaults filled in)."""
    source = cfg["source"]
    sampling = _sampling(cfg, seed)
    if source == "pre_encoded":
        # Pre-encoded latents or tokens: the folder `pre_encoded` names (its codec.json, and
        # its files unless `shards` streams them from tar shards).
        root = resolve_path(_require(cfg, "pre_encoded", split))
        segment_duration = float(_require(cfg, "segment_duration", split))
        if cfg.get("shards") is None:
            return PreEncodedDataset(root, split, segment_duration,
                                     weighted=bool(cfg["weighted"]), **sampling)
        codec = read_codec_file(root)
        for folder in _local_shard_folders(cfg["shards"]):  # their own codec.json must agree
            if (folder / CODEC_FILE).exists():
                check_same_codec(read_codec_file(folder), codec, f"dataset.{split}.shards={folder}")
        return EncodedShardDataset(_shard_urls(cfg, split), codec,
                                   segment_duration, **_streaming(cfg), **sampling)
    audio = dict(sample_rate=int(_require(cfg, "sample_rate", split)),
                 channels=int(_require(cfg, "channels", split)),
                 segment_duration=float(_require(cfg, "segment_duration", split)), **sampling)
    if source == "files":
        entries = read_manifests(_require(cfg, "manifest", split))
        return SegmentDataset(entries, weighted=bool(cfg["weighted"]),
                              name=f"dataset.{split}", **audio)
    # source: shards (the schema allows no other)
    return ShardDataset(_shard_urls(cfg, split), **_streaming(cfg), **audio)


def build_audio_datasets(dataset_cfg: DictConfig | Mapping[str, Any] | AudioDataConfig,
                         seed: int) -> dict[str, Dataset]:
    """{split: dataset} for each split the config defines (train, valid, evaluate, generate)."""
    settings = validate_section(dataset_cfg, AudioDataConfig, "dataset")
    # The section with its defaults; a split keeps only what it sets (null included).
    cfg = settings.model_dump(exclude=set(SPLITS))
    for split in SPLITS:
        own = getattr(settings, split)
        if own is not None:
            cfg[split] = own.model_dump(exclude_unset=True)
    datasets = {}
    for split in SPLITS:
        split_cfg = split_config(cfg, split)
        if split_cfg is not None:
            datasets[split] = build_split(split_cfg, split, seed)
    if not datasets:
        raise ConfigError(f"dataset defines none of the splits {', '.join(SPLITS)}.")
    return datasets
