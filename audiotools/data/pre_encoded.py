"""Datasets encoded once by a frozen codec (`audiotools pre-encode`), so a latent or token
model trains without running the codec every step.

A pre-encoded folder holds:
    codec.json          the codec's identity (source, weights' sha256, frame rate, latent_dim or
                        codebooks), the kind (latents | tokens) and, for latents, per-channel
                        statistics of the training split (for normalisation)
    <split>.jsonl       one line per file: file, frames, duration, source path, metadata
    <split>/NNNNNN.safetensors   the codec's raw latents (latent_dim, frames) float32 or
                        tokens (num_codebooks, frames) int64 of one audio file

Encoding is resumable (files already written are kept) and refuses a folder written by
another codec. Segments are drawn like audio segments (`SegmentSampler`: the same (seed, epoch,
index) determinism), in frames.
"""
from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file

from ..errors import ConfigError, writing
from ..io.atomic import atomic_path, write_text_atomic
from ..io.locking import LockHeld, take_lock
from ..models.autoencoder import AudioAutoencoder
from ..models.autoencoder.autoencoder import StreamedEncoding
from ..models.codec import FrozenCodec, LatentStats, is_discrete
from .audio import AudioFileError, audio_blocks, audio_info, audio_read, converted_blocks
from .segments import SegmentSampler
from .shards import CODEC_FILE, ShardDataset, write_shards

# Held by the run writing the folder (io/locking.py).
LOCK_FILE = ".lock"

# Keys of codec.json that must agree for data to be reused or read by a model.
IDENTITY_KEYS = ("identity", "kind", "frame_rate", "latent_dim", "num_codebooks", "cardinality",
                 "sample_rate", "channels")


def read_codec_file(root: Path) -> dict[str, Any]:
    path = root / CODEC_FILE
    if not path.exists():
        raise ConfigError(f"{root} is not a pre-encoded dataset (no {CODEC_FILE}); write one "
                          "with `audiotools pre-encode CODEC DSET OUT`.")
    codec = _json(path.read_text(), path)
    if not isinstance(codec, dict):
        raise ConfigError(f"{path}: damaged (not a JSON object); pre-encode into a new folder.")
    _check_stats(codec.get("stats"), codec.get("latent_dim"), path)
    return codec


def _check_stats(stats: Any, latent_dim: Any, path: Path) -> None:
    """Recorded statistics that can normalise: an edited codec.json raised deep in a model."""
    if stats is None:
        return

    def numbers(values: Any, positive: bool) -> bool:
        return (isinstance(values, list) and len(values) == latent_dim
                and all(isinstance(v, int | float) and not isinstance(v, bool)
                        and math.isfinite(v) and (v > 0 or not positive) for v in values))
    if not (isinstance(stats, dict) and numbers(stats.get("mean"), False)
            and numbers(stats.get("std"), True)):
        raise ConfigError(f"{path}: stats must hold mean and std, {latent_dim} finite numbers "
                          "each (std above 0), one per latent channel; pre-encode into a new "
                          "folder, which measures them.")


def _json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{path}: damaged ({error}); pre-encode into a new folder.") from None


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """A pre-encoded file, opened; a missing or damaged one is an error naming it and the way
    out."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield handle
    except (SafetensorError, OSError) as error:
        fault = ("a pre-encoded file its split lists is missing; re-run" if not path.exists()
                 else f"damaged pre-encoded file ({error}); delete it and re-run")
        raise ConfigError(f"{path}: {fault} `audiotools pre-encode` with the same arguments, "
                          "which encodes what is missing.") from None


def describe(codec: FrozenCodec) -> dict[str, Any]:
    """codec.json's content for `codec` (statistics are added once measured)."""
    kind = "tokens" if is_discrete(codec) else "latents"
    return {**codec.describe(), "kind": kind, "stats": None}


def check_same_codec(found: Mapping[str, Any], expected: Mapping[str, Any], where: str) -> None:
    """Refuse data written by another codec (or another kind of encoding)."""
    different = [key for key in IDENTITY_KEYS if found.get(key) != expected.get(key)]
    if different:
        details = ", ".join(f"{key}: {found.get(key)!r} there, {expected.get(key)!r} here"
                            for key in different)
        raise ConfigError(f"{where} was encoded by another codec ({found.get('source')}) than "
                          f"{expected.get('source')}: {details}.")


def _write_atomic(path: Path, tensors: dict[str, torch.Tensor], source: str) -> None:
    """The file's tensors, with the audio they encode named in its metadata (`source`), so a
    rerun can tell whether the file it would keep encodes the file it is asked for."""
    with writing(path), atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"source": source})


def _check_writable_here(out: Path) -> None:
    """`out` is new, empty (but for the lock) or pre-encoded: a folder of other files (a
    dataset's own manifests) is not written into."""
    if out.exists() and not (out / CODEC_FILE).exists() and any(
            path.name != LOCK_FILE for path in out.iterdir()):
        raise ConfigError(f"{out} holds files and is not a pre-encoded folder (no "
                          f"{CODEC_FILE}); pre-encode into a new or empty folder.")


def _kept_files(out: Path, splits: Mapping[str, list[dict[str, Any]]], kind: str,
                ) -> dict[Path, int]:
    """The frames of each file an earlier run wrote and this one keeps, checked before
    anything is written: `out` is new, empty or pre-encoded, and every kept file encodes the
    audio the manifest now puts at its place (a rerun over another file list would otherwise
    label one file's latents with another's metadata)."""
    kept: dict[Path, int] = {}
    _check_writable_here(out)
    if not out.exists() or not (out / CODEC_FILE).exists():
        return kept
    for split, entries in splits.items():
        index = out / f"{split}.jsonl"
        indexed = [line["source"] for line in _index(out, split)] if index.exists() else []
        for number, entry in enumerate(entries):
            target = out / split / f"{number:06d}.safetensors"
            if not target.exists():
                continue
            with _opened(target) as handle:
                recorded = (handle.metadata() or {}).get("source")
                kept[target] = handle.get_slice(kind).get_shape()[-1]
            if recorded is None and number < len(indexed):  # written before sources were
                recorded = indexed[number]
            if recorded is not None and recorded != entry["path"]:
                raise ConfigError(
                    f"{target} encodes {recorded}, but file {number} of split {split} is now "
                    f"{entry['path']}: {out} was pre-encoded from another file list. "
                    "Pre-encode into another folder (or delete this one).")
    return kept


def _encode_file(codec: FrozenCodec, kind: str, path: str, chunk_seconds: float,
                 device: torch.device) -> torch.Tensor:
    """The file's raw latents or tokens in `chunk_seconds` windows. An audiotools
    autoencoder's are read, converted and encoded a block at a time, so a file of any length
    takes a couple of windows' memory; another family's codec reads the file whole."""
    if isinstance(codec.codec, AudioAutoencoder):
        encoded = _encoded_blocks(codec, codec.codec.streamed_encoding(
            chunk_seconds, tokens=kind == "tokens"), path, chunk_seconds, device)
    else:
        audio, _ = audio_read(path, sample_rate=codec.sample_rate, channels=codec.channels)
        if audio.shape[-1] == 0:
            raise _no_samples(path)
        batch = audio[None].to(device)
        encoded = (codec.encode_to_tokens(batch, chunk_seconds) if kind == "tokens"
                   else codec.encode_raw(batch, chunk_seconds))
    return encoded[0].cpu() if kind == "tokens" else encoded[0].float().cpu()


def _encoded_blocks(codec: FrozenCodec, stream: StreamedEncoding, path: str,
                    chunk_seconds: float, device: torch.device) -> torch.Tensor:
    rate = audio_info(path).sample_rate
    blocks = audio_blocks(path, max(1, round(min(chunk_seconds, 10.0) * rate)))
    pieces = [stream.push(block[None].to(device)) for block in
              converted_blocks(blocks, rate, codec.sample_rate, codec.channels)]
    if stream.received == 0:
        raise _no_samples(path)
    return torch.cat([*pieces, stream.finish()], dim=-1)


def _no_samples(path: str) -> AudioFileError:
    return AudioFileError(f"{path}: the file holds no samples; leave it out of the manifest "
                          "(`audiotools manifest` rejects it).")


def pre_encode(codec: FrozenCodec, splits: Mapping[str, list[dict[str, Any]]], out: Path,
               chunk_seconds: float = 30.0, progress: Any = None) -> dict[str, Any]:
    """Encode every file of every split into `out`; files already there are kept (a rerun
    resumes). `progress(iterable, split)` wraps each split's files (a progress bar).
    Returns codec.json's content. One run at a time writes a folder (`out/.lock`): two mixed
    their files, each index naming latents the other had written."""
    _check_writable_here(out)  # before the lock file goes in
    out.mkdir(parents=True, exist_ok=True)
    try:
        lock = take_lock(out / LOCK_FILE)
    except LockHeld as held:
        raise ConfigError(f"{out} is being pre-encoded by another run (pid {held.holder} holds "
                          f"{out / LOCK_FILE}): wait for it to finish, or pre-encode into "
                          "another folder.") from None
    with lock:
        return _pre_encode(codec, splits, out, chunk_seconds, progress)


def _pre_encode(codec: FrozenCodec, splits: Mapping[str, list[dict[str, Any]]], out: Path,
                chunk_seconds: float, progress: Any) -> dict[str, Any]:
    identity = describe(codec)
    existing = out / CODEC_FILE
    if existing.exists():
        found = _json(existing.read_text(), existing)
        check_same_codec(found, identity, str(out))
        identity["stats"] = found.get("stats")  # kept unless the train split is encoded
    kind = identity["kind"]
    kept = _kept_files(out, splits, kind)
    write_text_atomic(existing, json.dumps(identity, indent=1))
    device = codec.mean.device
    for split, entries in splits.items():
        index = []
        files: Iterable[tuple[int, dict[str, Any]]] = enumerate(entries)
        for number, entry in (progress(files, split) if progress else files):
            target = out / split / f"{number:06d}.safetensors"
            if target in kept:  # written by an earlier run
                frames = kept[target]
            else:
                values = _encode_file(codec, kind, entry["path"], chunk_seconds, device)
                _write_atomic(target, {kind: values}, entry["path"])
                frames = values.shape[-1]
            index.append({"file": str(target.relative_to(out)), "frames": frames,
                          "duration": frames / codec.frame_rate, "source": entry["path"],
                          "meta": entry.get("meta", {})})
        write_text_atomic(out / f"{split}.jsonl",
                          "".join(json.dumps(line) + "\n" for line in index))
    if kind == "latents" and "train" in splits:
        identity["stats"] = LatentStats.measure(
            _read(out, line["file"], kind) for line in _index(out, "train")).__dict__
        write_text_atomic(existing, json.dumps(identity, indent=1))
    return identity


def _index(root: Path, split: str) -> list[dict[str, Any]]:
    path = root / f"{split}.jsonl"
    if not path.exists():
        raise ConfigError(f"{root} has no pre-encoded split {split!r} ({path} is missing).")
    return [_json(line, path) for line in path.read_text().splitlines() if line.strip()]


def load_stored(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of one pre-encoded file (a damaged file: an error naming it)."""
    with _opened(path) as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


def _read(root: Path, file: str, kind: str, start: int = 0, stop: int | None = None,
          ) -> torch.Tensor:
    with _opened(root / file) as handle:
        values = handle.get_slice(kind)
        stop = values.get_shape()[-1] if stop is None else stop
        return values[:, start:stop]


class EncodedData:
    """What datasets of pre-encoded data share: the codec.json of the data (`codec`)."""

    codec: dict[str, Any]

    def check_codec(self, codec: FrozenCodec, where: str) -> None:
        """Refuse a model whose codec (or kind: latents, tokens) is not the one that wrote
        this data."""
        check_same_codec(self.codec, describe(codec), where)


class PreEncodedDataset(EncodedData, SegmentSampler):
    """Segments of pre-encoded latents or tokens: items {kind: (D or K, frames),
    padding_mask: (frames,), info: {path, seek_time, seconds_start, seconds_total, meta}}
    (the info of audio segments, so conditioning reads the same metadata)."""

    def __init__(self, root: str | Path, split: str, segment_duration: float, *, seed: int = 0,
                 random_segments: bool = True, num_samples: int | None = None,
                 weighted: bool = False, min_segment_ratio: float = 0.5,
                 return_info: bool = True):
        self.root = Path(root)
        self.codec = read_codec_file(self.root)
        self.kind: str = self.codec["kind"]
        self.frame_rate: float = self.codec["frame_rate"]
        super().__init__(_index(self.root, split), segment_duration, seed=seed,
                         random_segments=random_segments, num_samples=num_samples,
                         weighted=weighted, min_segment_ratio=min_segment_ratio,
                         name=f"dataset.{split} ({self.root})")
        self.frames = round(segment_duration * self.frame_rate)
        self.return_info = return_info

    def __getitem__(self, index: int) -> dict[str, Any]:
        file, seek = self.locate(index)
        entry = self.entries[file]
        start = round(seek * self.frame_rate)
        values = _read(self.root, entry["file"], self.kind, start, start + self.frames)
        return encoded_segment(values, self.kind, self.frames, entry, seek, self.return_info)


def encoded_segment(values: torch.Tensor, kind: str, frames: int, entry: Mapping[str, Any],
                    seek: float, return_info: bool) -> dict[str, Any]:
    """One item from the frames of a segment (fewer at a file's end: zero-padded, masked)."""
    length = min(frames, values.shape[-1])
    padded = torch.zeros(values.shape[0], frames, dtype=values.dtype)
    padded[:, :length] = values[:, :length]
    mask = torch.zeros(frames, dtype=torch.bool)
    mask[:length] = True
    item: dict[str, Any] = {kind: padded, "padding_mask": mask}
    if return_info:
        item["info"] = {"path": entry["source"], "seek_time": seek, "seconds_start": seek,
                        "seconds_total": entry["duration"], "meta": entry.get("meta", {})}
    return item


def write_encoded_shards(root: Path, split: str, outdir: Path, samples_per_shard: int,
                         force: bool = False) -> list[Path]:
    """Tar shards of one pre-encoded split (each file's tensor and its index line), with
    codec.json copied beside them so a dset can name the shards as its data; a folder that
    already holds shards is refused unless `force` (write_shards)."""
    entries = [{**line, "path": str(root / line["file"])} for line in _index(root, split)]
    codec = (root / CODEC_FILE).read_text()
    written = write_shards(entries, outdir, samples_per_shard, force)
    write_text_atomic(outdir / CODEC_FILE, codec)
    return written


class EncodedShardDataset(EncodedData, ShardDataset):
    """Segments of pre-encoded latents or tokens streamed from the shards
    `write_encoded_shards` wrote (`codec`: the codec.json of that data), ordered and split as
    audio shards are."""

    def __init__(self, shards: str | list[str], codec: Mapping[str, Any],
                 segment_duration: float, **options: Any):
        super().__init__(shards, codec["sample_rate"], codec["channels"], segment_duration,
                         **options)
        self.codec = dict(codec)
        self.kind: str = codec["kind"]
        self.frame_rate: float = codec["frame_rate"]
        self.frames = round(segment_duration * self.frame_rate)

    def _sample(self, sample: dict[str, Any],
                ) -> tuple[dict[str, Any], Callable[[float], dict[str, Any]]] | None:
        entry = json.loads(sample["json"])
        values = load_tensors(sample["safetensors"])[self.kind]

        def read(seek: float) -> dict[str, Any]:
            start = round(seek * self.frame_rate)
            return encoded_segment(values[:, start:start + self.frames], self.kind, self.frames,
                                   entry, seek, self.return_info)
        return entry, read
