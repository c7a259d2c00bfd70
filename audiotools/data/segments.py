"""Fixed-length segments at the model's sample rate and channel count, from manifest entries.

Training draws random segments: the item at `index` is a pure function of (seed, epoch, index),
so a resumed run, any number of workers and any DDP layout see exactly the same items. Valid,
evaluate and generate splits enumerate fixed segments that never change with the epoch.

A segment that runs past the end of its file is zero-padded; `padding_mask` is True on real
samples. A file that breaks after the manifest was built (deleted, rewritten, NaN) yields a
*failed* item that `collate_segments` drops with the path logged: the batch is one item short,
never silently filled with another file.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .audio import AudioFileError, AudioSource, audio_read

logger = logging.getLogger(__name__)


def segment_frames(segment_duration: float, sample_rate: int) -> int:
    return round(segment_duration * sample_rate)


def draw_seek(rng: np.random.Generator, duration: float, segment_duration: float,
              min_segment_ratio: float) -> float:
    """A start time leaving at least `min_segment_ratio` of the segment inside the file."""
    return float(rng.uniform(0.0, max(0.0, duration - segment_duration * min_segment_ratio)))


def fixed_seeks(duration: float, segment_duration: float, min_segment_ratio: float,
                ) -> list[float]:
    """Consecutive segment starts covering the file; the last is kept when at least
    `min_segment_ratio` of it is real audio."""
    count = max(1, math.floor(duration / segment_duration + 1 - min_segment_ratio + 1e-9))
    return [i * segment_duration for i in range(count)]


# How much shorter than its manifest entry says a read may be: decoders of one file disagree
# by a frame or so (an MP3 frame is 26 ms at 44.1 kHz); a file cut short lacks far more.
_CUT_SHORT_TOLERANCE = 0.1


def _check_not_cut_short(entry: dict[str, Any], seek: float, read: float,
                         segment_duration: float) -> None:
    """Refuse a read shorter than the manifest's duration gives: the file was truncated (or
    replaced) since the manifest was built, and its missing end would be taken for padding.
    Only for a duration the manifest decoded (its `frames`): one read from a header (a shard
    sample without its entry) may be an estimate, a VBR MP3's."""
    if "frames" not in entry:
        return
    expected = min(segment_duration, entry["duration"] - seek)
    if read < expected - _CUT_SHORT_TOLERANCE:
        raise AudioFileError(
            f"{entry['path']}: {read:.3f} s of audio at {seek:.3f} s where its manifest entry "
            f"({entry['duration']:.3f} s) gives {expected:.3f} s; the file changed since the "
            "manifest was built (rebuild it with `audiotools manifest`).")


def load_segment(source: AudioSource, entry: dict[str, Any], seek: float,
                 segment_duration: float, sample_rate: int, channels: int,
                 return_info: bool) -> dict[str, Any]:
    """One item: audio [C, T] float32, padding_mask [T] bool, and its info when asked.
    A read failure becomes a failed item (same shapes, `error` set, mask all False)."""
    frames = segment_frames(segment_duration, sample_rate)
    audio = torch.zeros(channels, frames)
    mask = torch.zeros(frames, dtype=torch.bool)
    item: dict[str, Any] = {"audio": audio, "padding_mask": mask}
    if return_info:
        item["info"] = {
            "path": entry["path"], "seek_time": seek, "seconds_start": seek,
            "seconds_total": entry["duration"], "sample_rate": entry["sample_rate"],
            "channels": entry["channels"], "meta": entry.get("meta", {})}
    try:
        wav, _ = audio_read(source, seek, segment_duration, sample_rate, channels)
        if not torch.isfinite(wav).all():
            raise AudioFileError(f"{entry['path']}: non-finite samples (NaN/inf)")
        if wav.shape[-1] == 0:
            raise AudioFileError(f"{entry['path']}: no audio at {seek:.3f} s (file changed?)")
        _check_not_cut_short(entry, seek, wav.shape[-1] / sample_rate, segment_duration)
    except (AudioFileError, OSError) as err:
        message = f"{entry['path']} at {seek:.3f} s: {err}"
        logger.warning("Skipping a segment that cannot be read: %s", message)
        item["error"] = message
        return item
    length = min(frames, wav.shape[-1])
    audio[:, :length] = wav[:, :length]
    mask[:length] = True
    return item


def collate_segments(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack each tensor (audio [B, C, T], or latents/tokens [B, D, F], and padding_mask);
    keep info as a list of dicts. Failed items are dropped (their path was logged when read),
    so B may be smaller than asked; `rows` holds where each kept one was in the batch asked
    for (what a sampler position, such as DDP's padding, refers to)."""
    rows = [row for row, item in enumerate(items) if "error" not in item]
    kept = [items[row] for row in rows]
    tensors = [key for key, value in items[0].items() if isinstance(value, torch.Tensor)]
    if not kept:
        batch = {key: torch.empty(0, *items[0][key].shape, dtype=items[0][key].dtype)
                 for key in tensors}
        return {**batch, "info": [], "rows": torch.zeros(0, dtype=torch.long)}
    batch: dict[str, Any] = {key: torch.stack([item[key] for item in kept]) for key in tensors}
    if "info" in kept[0]:
        batch["info"] = [item["info"] for item in kept]
    batch["rows"] = torch.tensor(rows, dtype=torch.long)
    return batch


class SegmentSampler(Dataset):
    """Which segment of which entry each item is: entries have a `duration` in seconds.

    random_segments: draw an entry (uniformly, or weighted by duration) and a start per item;
        `num_samples` items per epoch (default: total duration / segment duration).
    otherwise: every fixed segment of every entry in order (`num_samples` keeps that many,
        evenly spread), identical at every epoch.
    Entries shorter than `min_segment_ratio * segment_duration` are left out. Subclasses read
    the segment (audio, or pre-encoded latents and tokens).
    """

    def __init__(self, entries: list[dict[str, Any]], segment_duration: float, *, seed: int = 0,
                 random_segments: bool = True, num_samples: int | None = None,
                 weighted: bool = False, min_segment_ratio: float = 0.5, name: str = "dataset"):
        if segment_duration <= 0 or not 0 < min_segment_ratio <= 1:
            raise ConfigError(
                f"{name}: segment_duration={segment_duration}, min_segment_ratio="
                f"{min_segment_ratio}; need segment_duration > 0 and 0 < min_segment_ratio <= 1.")
        shortest = segment_duration * min_segment_ratio
        if not entries:
            raise ConfigError(f"{name}: the manifest lists no files.")
        self.entries = [e for e in entries if e["duration"] >= shortest]
        if len(self.entries) < len(entries):
            logger.info("%s: %d of %d files last under %.3f s (min_segment_ratio * "
                        "segment_duration) and are left out.", name,
                        len(entries) - len(self.entries), len(entries), shortest)
        if not self.entries:
            raise ConfigError(
                f"{name}: none of the {len(entries)} files lasts {shortest:.3f} s "
                f"(min_segment_ratio * segment_duration); lower segment_duration or "
                "min_segment_ratio.")
        self.segment_duration = segment_duration
        self.seed = seed
        self.epoch = 0
        self.random_segments = random_segments
        self.min_segment_ratio = min_segment_ratio
        durations = np.array([e["duration"] for e in self.entries])
        self.weights = durations / durations.sum() if weighted else None
        if random_segments:
            self.length = num_samples or max(1, int(durations.sum() // segment_duration))
            self.fixed: list[tuple[int, float]] = []
        else:
            segments = [(i, seek) for i, e in enumerate(self.entries)
                        for seek in fixed_seeks(e["duration"], segment_duration,
                                                min_segment_ratio)]
            if num_samples and num_samples < len(segments):
                segments = [segments[i * len(segments) // num_samples]
                            for i in range(num_samples)]
            self.fixed = segments
            self.length = len(segments)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, float]:
        """(entry index, start second) of item `index` at the current epoch."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} segments")
        if not self.random_segments:
            return self.fixed[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        file = int(rng.choice(len(self.entries), p=self.weights))
        entry = self.entries[file]
        return file, draw_seek(rng, entry["duration"], self.segment_duration,
                               self.min_segment_ratio)


class SegmentDataset(SegmentSampler):
    """Audio segments from manifest entries, at `sample_rate` and `channels` (see
    SegmentSampler for which segments)."""

    def __init__(self, entries: list[dict[str, Any]], sample_rate: int, channels: int,
                 segment_duration: float, *, seed: int = 0, random_segments: bool = True,
                 num_samples: int | None = None, weighted: bool = False,
                 min_segment_ratio: float = 0.5, return_info: bool = True, name: str = "dataset"):
        super().__init__(entries, segment_duration, seed=seed, random_segments=random_segments,
                         num_samples=num_samples, weighted=weighted,
                         min_segment_ratio=min_segment_ratio, name=name)
        wider = next((e for e in self.entries
                      if 1 < int(e["channels"]) < channels), None)
        if wider is not None:  # found now, not at the batch that draws it
            raise ConfigError(f"{name}: channels={channels}, but {wider['path']} has "
                              f"{wider['channels']}; use channels=1, channels<="
                              f"{wider['channels']}, or mono sources.")
        self.sample_rate = sample_rate
        self.channels = channels
        self.return_info = return_info

    def __getitem__(self, index: int) -> dict[str, Any]:
        file, seek = self.locate(index)
        entry = self.entries[file]
        return load_segment(entry["path"], entry, seek, self.segment_duration,
                            self.sample_rate, self.channels, self.return_info)
