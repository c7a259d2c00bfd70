"""Segments per second through a DataLoader (2 workers, batch 16): our segment dataset vs the
naive way, and WebDataset shards vs files.

Method
- Long files: the shipped music_small clips concatenated into 8 files of ~80 s, written as
  44.1 kHz stereo FLAC (a usual source format) in a temp dir. The model wants 2 s segments at
  16 kHz mono.
- Naive (as stable-audio-tools' SampleDataset does): for every item, read the whole file,
  build a resampler and resample all of it, then crop a random segment.
- Ours: `SegmentDataset` seeks and reads only the segment, then resamples it (cached kernel).
- Shards: the same files packed by `write_shards`, streamed by `ShardDataset` with 1 and with
  16 segments drawn per streamed file; plus the shipped short clips (16 s, Ogg) from files and
  from shards, the layout shards are meant for.
- Every loader is timed from creating its iterator (worker start-up included) to the last
  batch. Cases run interleaved, `--repeats` rounds; figures are medians (and ranges), the
  ratio is paired per round (the 2-core VM is shared, and its load drifts).

Run: python benchmarks/data_loading.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import soundfile as sf
import torch
import torchaudio
from torch.utils.data import DataLoader, Dataset

from audiotools.data.audio import audio_read, audio_write, convert_channels
from audiotools.data.manifest import read_manifest, scan_tree
from audiotools.data.segments import SegmentDataset, collate_segments
from audiotools.data.shards import ShardDataset, write_shards

MUSIC = Path(__file__).resolve().parent.parent / "audiotools" / "datasets" / "music_small"
RATE, CHANNELS, SEGMENT, BATCH, WORKERS = 16000, 1, 2.0, 16, 2
SOURCE_RATE, LONG_FILES = 44100, 8


class NaiveDataset(Dataset):
    """Whole-file read + full resample per item (stable-audio-tools' SampleDataset)."""

    def __init__(self, paths: list[str], length: int):
        self.paths = paths
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = random.Random(index)
        data, rate = sf.read(self.paths[rng.randrange(len(self.paths))], dtype="float32",
                             always_2d=True)
        audio = torch.from_numpy(data.T.copy())
        audio = torchaudio.transforms.Resample(rate, RATE)(audio)
        audio = convert_channels(audio, CHANNELS)
        frames = round(SEGMENT * RATE)
        start = rng.randrange(max(1, audio.shape[-1] - frames))
        audio = audio[:, start:start + frames]
        return {"audio": audio, "padding_mask": torch.ones(frames, dtype=torch.bool)}


def make_long_files(folder: Path) -> list[dict]:
    clips = [e for split in ("train", "valid", "evaluate")
             for e in read_manifest(MUSIC / f"{split}.jsonl")]
    for index in range(LONG_FILES):
        group = clips[index::LONG_FILES]
        audio = torch.cat([audio_read(e["path"], sample_rate=SOURCE_RATE, channels=2)[0]
                           for e in group], dim=-1)
        audio_write(folder / f"long{index}.flac", audio, SOURCE_RATE)
    entries, _ = scan_tree(folder, workers=WORKERS)
    return entries


def segments_per_second(dataset: Dataset, epoch: int) -> float:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=WORKERS,
                        collate_fn=collate_segments)
    start = time.perf_counter()
    count = sum(batch["audio"].shape[0] for batch in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--items", type=int, default=1024, help="segments per timed run")
    parser.add_argument("--naive-items", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "long").mkdir()
        entries = make_long_files(tmp / "long")
        write_shards(entries, tmp / "long_shards", samples_per_shard=1)
        short = [e for split in ("train", "valid", "evaluate")
                 for e in read_manifest(MUSIC / f"{split}.jsonl")]
        write_shards(short, tmp / "short_shards", samples_per_shard=5)
        minutes = sum(e["duration"] for e in entries) / 60
        print(f"{len(entries)} long files, {minutes:.1f} min at {SOURCE_RATE} Hz stereo FLAC → "
              f"{SEGMENT} s segments at {RATE} Hz mono; DataLoader {WORKERS} workers, "
              f"batch {BATCH}; {args.repeats} interleaved rounds")

        common = dict(sample_rate=RATE, channels=CHANNELS, segment_duration=SEGMENT)
        cases: list[tuple[str, Callable[[], Dataset]]] = [
            ("naive (whole file + resample per item)",
             lambda: NaiveDataset([e["path"] for e in entries], args.naive_items)),
            ("SegmentDataset, files",
             lambda: SegmentDataset(entries, num_samples=args.items, **common)),
            ("ShardDataset, 1 segment per file",
             lambda: ShardDataset(str(tmp / "long_shards"), num_samples=args.items // 8,
                                  segments_per_file=1, **common)),
            ("ShardDataset, 16 segments per file",
             lambda: ShardDataset(str(tmp / "long_shards"), num_samples=args.items,
                                  segments_per_file=16, **common)),
            ("short clips: SegmentDataset, files",
             lambda: SegmentDataset(short, num_samples=args.items, **common)),
            ("short clips: ShardDataset, 1 segment per file",
             lambda: ShardDataset(str(tmp / "short_shards"), num_samples=args.items,
                                  segments_per_file=1, **common)),
        ]
        datasets = {name: build() for name, build in cases}
        rates: dict[str, list[float]] = {name: [] for name in datasets}
        for repeat in range(args.repeats):  # interleaved, so load drift hits every case alike
            for name, dataset in datasets.items():
                rates[name].append(segments_per_second(dataset, repeat))
        for name, values in rates.items():
            print(f"{name:48s} {statistics.median(values):8.1f} segments/s "
                  f"(range {min(values):.1f}-{max(values):.1f})")
        ratios = [ours / naive for ours, naive in zip(
            rates["SegmentDataset, files"], rates[cases[0][0]], strict=True)]
        print(f"SegmentDataset / naive, paired per repeat: median {statistics.median(ratios):.1f}x "
              f"(range {min(ratios):.1f}-{max(ratios):.1f})")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
