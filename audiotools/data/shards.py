"""WebDataset tar shards: writing them from a manifest, and streaming segments from them.

A shard sample is the original file's bytes (no re-encoding, `<key>.<ext>`) and its manifest
entry (`<key>.json`). Shards written by other tools (stable-audio-tools' WebDataset layout: audio
plus a JSON of free metadata) are read too: what the manifest entry would hold is probed from the
audio bytes, and their JSON becomes the entry's `meta`. The reader opens shards with
webdataset's `gopen`, so a shard is a local path, any URL curl reads, or `pipe:COMMAND`
(`pipe:aws s3 cp s3://bucket/shard-000000.tar -`); patterns like `shard-{000000..000099}.tar`
expand. Items are the same dicts as `SegmentDataset`'s.

Order is a pure function of (seed, epoch, rank, worker): shards are shuffled per epoch, split
across DDP ranks then DataLoader workers, and segments pass through a seeded shuffle buffer.
"""
from __future__ import annotations

import io
import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch.utils.data
import webdataset as wds
from webdataset.shardlists import expand_urls
from webdataset.tariterators import tarfile_samples

from .. import distributed
from ..errors import AudiotoolsError, ConfigError, StorageError, writing
from ..io.atomic import atomic_path, write_text_atomic
from .audio import AUDIO_SUFFIXES, AudioFileError, audio_info
from .manifest import REQUIRED_KEYS
from .segments import draw_seek, fixed_seeks, load_segment

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
# The codec of pre-encoded data (data/pre_encoded.py), also beside their shards' index.
CODEC_FILE = "codec.json"
# A sample's audio member: by the common extensions, then by the name of any format soundfile
# reads (what `write_shards` stores a file of another extension under).
AUDIO_EXTENSIONS = tuple(dict.fromkeys(
    [suffix.lstrip(".") for suffix in AUDIO_SUFFIXES]
    + [name.lower() for name in sf.available_formats()]))


def shard_folder_contents(outdir: Path) -> list[Path]:
    """What an earlier `write_shards` (or pre-encoded shards) left in `outdir`."""
    if not outdir.is_dir():
        return []
    named = [outdir / INDEX_NAME, outdir / CODEC_FILE]
    return [path for path in named if path.exists()] + sorted(outdir.glob("shard-*.tar"))


def write_shards(entries: list[dict[str, Any]], outdir: str | os.PathLike,
                 samples_per_shard: int, force: bool = False) -> list[Path]:
    """Write `shard-NNNNNN.tar` files of at most `samples_per_shard` files each, plus an
    `index.json` listing the shards, their sample counts and total duration. A folder that
    already holds shards is refused unless `force`, which replaces them (none of the earlier
    ones is left for a pattern to pick up)."""
    if samples_per_shard < 1:
        raise ConfigError(f"samples_per_shard={samples_per_shard}; use a positive count.")
    outdir = Path(outdir)
    missing = [entry["path"] for entry in entries if not Path(entry["path"]).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ConfigError(f"{missing[0]}{more}: no such file, listed in the manifest; rebuild "
                          "it with `audiotools manifest` (nothing was written).")
    if ((outdir / CODEC_FILE).exists() and not (outdir / INDEX_NAME).exists()
            and not any(outdir.glob("shard-*.tar"))):
        raise ConfigError(f"{outdir} is a pre-encoded dataset (its {CODEC_FILE}, no shard "
                          f"{INDEX_NAME}), which shards would make unusable; write them to "
                          "another folder (nothing was written).")
    previous = shard_folder_contents(outdir)
    if previous and not force:
        shown = ", ".join(path.name for path in previous[:3])
        more = ", ..." if len(previous) > 3 else ""
        raise ConfigError(f"{outdir} already holds shards ({shown}{more}); choose another "
                          "folder or pass --force to replace them.")
    outdir.mkdir(parents=True, exist_ok=True)
    # The earlier index would list shards as they were while they are replaced: gone until
    # the new one is written.
    (outdir / INDEX_NAME).unlink(missing_ok=True)
    shards: list[dict[str, Any]] = []
    for start in range(0, len(entries), samples_per_shard):
        chunk = entries[start:start + samples_per_shard]
        path = outdir / f"shard-{len(shards):06d}.tar"
        try:
            with writing(path), atomic_path(path) as tmp, wds.TarWriter(str(tmp)) as sink:
                for offset, entry in enumerate(chunk):
                    audio = Path(entry["path"])
                    sink.write({"__key__": f"{start + offset:09d}",
                                _member_name(audio): audio.read_bytes(),
                                "json": json.dumps(entry, ensure_ascii=False).encode()})
        except StorageError as error:
            raise StorageError(
                f"{error} {outdir} holds {len(shards)} of the "
                f"{math.ceil(len(entries) / samples_per_shard)} shards and no {INDEX_NAME} of "
                "them: make room, then run the same command with --force.") from error
        shards.append({"name": path.name, "samples": len(chunk),
                       "duration": sum(e["duration"] for e in chunk)})
    index = {"shards": shards, "samples": len(entries),
             "duration": sum(s["duration"] for s in shards)}
    try:
        write_text_atomic(outdir / INDEX_NAME, json.dumps(index, indent=1) + "\n")
    except StorageError as error:
        raise StorageError(f"{error} The shards are written but not indexed: make room, then "
                           "run the same command with --force.") from error
    written = [outdir / s["name"] for s in shards]
    for path in previous:
        if path not in written and path.name != INDEX_NAME:
            path.unlink()
    return written


def shard_urls(spec: str | list[str]) -> list[str]:
    """A shard folder (its index.json), a brace pattern, a URL/pipe, or a list of those."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    urls: list[str] = []
    for item in specs:
        index = Path(item) / INDEX_NAME
        if "://" not in item and not item.startswith("pipe:") and index.is_file():
            urls += [str(Path(item) / s["name"]) for s in json.loads(index.read_text())["shards"]]
        else:
            urls += expand_urls(item)
    if not urls:
        raise ConfigError(f"shards={spec!r} names no shard; give a shard folder with "
                          f"{INDEX_NAME}, a pattern like shard-{{000000..000009}}.tar, or URLs.")
    return urls


def _member_name(path: Path) -> str:
    """A file's member name in a shard: its extension when the audio reader looks for it,
    else (`.oga`, `.caf`, none) the name of the format soundfile reads it as; a file that is
    not audio (pre-encoded `.safetensors`) keeps its extension."""
    extension = path.suffix.lstrip(".").lower()
    if extension in AUDIO_EXTENSIONS:
        return extension
    try:
        return sf.info(str(path)).format.lower()
    except (sf.LibsndfileError, RuntimeError):
        return extension


def _audio_key(sample: dict[str, Any]) -> str | None:
    """The sample's audio member; None (with a warning) when it has none, e.g. a shard cut
    off between a sample's JSON and its audio."""
    for key in AUDIO_EXTENSIONS:
        if key in sample:
            return key
    logger.warning("Skipping shard sample %s from %s: no audio member (looked for the names "
                   "of the formats soundfile reads: %s).", sample.get("__key__"),
                   sample.get("__url__"), ", ".join(AUDIO_EXTENSIONS[:8]) + ", ...")
    return None


def _sample_entry(sample: dict[str, Any], data: bytes) -> dict[str, Any] | None:
    """The sample's manifest entry; probed from its audio when its JSON is not one (None, with
    a warning, when the audio cannot be read)."""
    meta = json.loads(sample["json"]) if "json" in sample else {}
    if all(key in meta for key in REQUIRED_KEYS):
        return meta
    path = f"{sample.get('__url__')}#{sample.get('__key__')}"
    try:
        info = audio_info(io.BytesIO(data))
    except AudioFileError as error:
        logger.warning("Skipping shard sample %s: %s", path, error)
        return None
    return {"path": path, "duration": info.duration, "sample_rate": info.sample_rate,
            "channels": info.channels, "meta": meta}


class _RunningMean:
    """The mean duration of the files a stream has read so far."""

    def __init__(self) -> None:
        self.files, self.seconds = 0, 0.0

    def add(self, duration: float) -> float:
        self.files, self.seconds = self.files + 1, self.seconds + duration
        return self.seconds / self.files


class ShardDataset(torch.utils.data.IterableDataset):
    """Segments streamed from tar shards.

    random_segments: shards shuffled per epoch, `segments_per_file` random segments drawn from
        each file (`weighted`: that many times the file's duration over the mean duration of
        the files the stream has read so far, rounded at random, so that every second is drawn
        about equally often, as the files dataset's duration weighting does), mixed in a
        `shuffle_buffer`; each rank yields `num_samples / world` items per epoch, cycling over
        its shards when they run out.
    otherwise: one pass, fixed segments of every file, in shard order (valid/evaluate/generate);
        with `num_samples`, the first `num_samples` of them (a stream cannot spread them over
        the files as the files dataset does without reading it twice).
    """

    def __init__(self, shards: str | list[str], sample_rate: int, channels: int,
                 segment_duration: float, *, seed: int = 0, random_segments: bool = True,
                 num_samples: int | None = None, segments_per_file: int = 1,
                 shuffle_buffer: int = 64, min_segment_ratio: float = 0.5,
                 return_info: bool = True, weighted: bool = False):
        self.urls = shard_urls(shards)
        if random_segments and not num_samples:
            raise ConfigError("shards with random segments need num_samples (items per epoch).")
        self.sample_rate = sample_rate
        self.channels = channels
        self.segment_duration = segment_duration
        self.seed = seed
        self.epoch = 0
        self.random_segments = random_segments
        self.num_samples = num_samples
        self.segments_per_file = segments_per_file
        self.weighted = weighted
        self.shuffle_buffer = shuffle_buffer
        self.min_segment_ratio = min_segment_ratio
        self.return_info = return_info

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Items per epoch for this rank; a fixed pass is only counted by reading it."""
        if self.num_samples is None:
            raise TypeError("a fixed pass over shards has no length until read")
        return self.num_samples // distributed.world_size()

    def _placement(self) -> tuple[int, int, int, int]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return distributed.rank(), distributed.world_size(), worker, workers

    def _my_shards(self, cycle: int) -> list[str]:
        rank, world, worker, workers = self._placement()
        if len(self.urls) < world:
            raise ConfigError(f"{len(self.urls)} shards for {world} processes; write at least "
                              "one shard per process (lower --samples-per-shard).")
        urls = list(self.urls)
        if self.random_segments:
            np.random.default_rng([self.seed, self.epoch, cycle]).shuffle(urls)
        return urls[rank::world][worker::workers]

    def _sample(self, sample: dict[str, Any],
                ) -> tuple[dict[str, Any], Callable[[float], dict[str, Any]]] | None:
        """A shard sample's entry (duration, metadata) and the reader of its segment at a
        start second; None to skip it (logged). Pre-encoded shards read tensors instead."""
        key = _audio_key(sample)
        if key is None:
            return None
        data = sample[key]
        entry = _sample_entry(sample, data)
        if entry is None:
            return None
        return entry, lambda seek: load_segment(io.BytesIO(data), entry, seek,
                                                self.segment_duration, self.sample_rate,
                                                self.channels, self.return_info)

    def _segments(self, urls: list[str], rng: np.random.Generator | None,
                  durations: _RunningMean | None = None) -> Iterator[dict[str, Any]]:
        samples = tarfile_samples(({"url": url} for url in urls), handler=wds.warn_and_continue)
        for sample in samples:
            found = self._sample(sample)
            if found is None:
                continue
            entry, read = found
            if rng is not None:
                assert durations is not None, "random segments need the stream's durations"
                count = self._draws(entry["duration"], durations.add(entry["duration"]), rng)
                seeks = [draw_seek(rng, entry["duration"], self.segment_duration,
                                   self.min_segment_ratio) for _ in range(count)]
            elif entry["duration"] >= self.segment_duration * self.min_segment_ratio:
                seeks = fixed_seeks(entry["duration"], self.segment_duration,
                                    self.min_segment_ratio)
            else:
                continue
            for seek in seeks:
                yield read(seek)

    def _draws(self, duration: float, mean_duration: float, rng: np.random.Generator) -> int:
        """How many random segments a streamed file gives."""
        if not self.weighted:
            return self.segments_per_file
        expected = self.segments_per_file * duration / mean_duration
        return int(expected) + int(rng.random() < expected - int(expected))

    def _shuffled(self, items: Iterator[dict[str, Any]], rng: np.random.Generator,
                  ) -> Iterator[dict[str, Any]]:
        buffer: list[dict[str, Any]] = []
        for item in items:
            buffer.append(item)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world, worker, workers = self._placement()
        per_rank = None if self.num_samples is None else self.num_samples // world
        quota = None if per_rank is None else per_rank // workers + (worker < per_rank % workers)
        if not self.random_segments:
            yield from itertools.islice(self._segments(self._my_shards(0), None), quota)
            return
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker])
        durations = _RunningMean()
        produced, cycle = 0, 0
        while produced < quota:
            urls = self._my_shards(cycle)
            if not urls:
                raise ConfigError(
                    f"DataLoader worker {worker} of rank {rank} has no shard; use at most "
                    f"{len(self.urls) // world} workers or write more shards.")
            before = produced
            for item in self._shuffled(self._segments(urls, rng, durations), rng):
                yield item
                produced += 1
                if produced == quota:
                    return
            if produced == before:
                raise AudiotoolsError(f"no readable sample in shards {urls}; see the warnings.")
            cycle += 1
