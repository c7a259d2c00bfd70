from __future__ import annotations

import logging
import os
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audiotools.data.manifest import scan_tree
from audiotools.data.segments import SegmentDataset, collate_segments, fixed_seeks
from audiotools.errors import ConfigError


@pytest.fixture
def entries(tmp_path, write_tone):
    write_tone("set/long.wav", 6.0, 44100, channels=2)
    write_tone("set/mid.flac", 3.0, 22050)
    write_tone("set/short.wav", 0.75, 16000)
    found, rejected = scan_tree(tmp_path / "set", workers=2)
    assert not rejected
    return found  # long, mid, short (path order: long.wav, mid.flac, short.wav)


def _dataset(entries, **kwargs) -> SegmentDataset:
    return SegmentDataset(entries, 16000, 1, 1.0, **{"seed": 3, **kwargs})


def test_items_have_model_rate_channels_and_info(entries):
    item = _dataset(entries)[0]
    assert item["audio"].shape == (1, 16000) and item["audio"].dtype == torch.float32
    assert item["padding_mask"].shape == (16000,) and item["padding_mask"].dtype == torch.bool
    info = item["info"]
    entry = next(e for e in entries if e["path"] == info["path"])
    assert info["seconds_total"] == entry["duration"]
    assert info["seek_time"] == info["seconds_start"]
    assert 0 <= info["seek_time"] <= entry["duration"] - 0.5
    assert _dataset(entries, return_info=False)[0].keys() == {"audio", "padding_mask"}


def test_item_is_a_pure_function_of_seed_epoch_index(entries):
    a, b = _dataset(entries), _dataset(entries)
    for dataset in (a, b):
        dataset.set_epoch(2)
    assert [b.locate(i) for i in (7, 3, 5)] == [a.locate(i) for i in (7, 3, 5)]
    assert torch.equal(a[5]["audio"], b[5]["audio"])
    epoch2 = [a.locate(i) for i in range(len(a))]
    a.set_epoch(3)
    assert [a.locate(i) for i in range(len(a))] != epoch2
    assert [_dataset(entries, seed=4).locate(i) for i in range(len(a))] != epoch2


def test_workers_yield_the_same_batches_as_the_main_process(entries):
    dataset = _dataset(entries, num_samples=12)
    dataset.set_epoch(1)

    def batches(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(dataset, batch_size=4, num_workers=workers,
                            collate_fn=collate_segments)
        return [batch["audio"] for batch in loader]

    for main, worker in zip(batches(0), batches(2), strict=True):
        assert torch.equal(main, worker)


def test_short_file_is_padded_and_masked(entries):
    short = [e for e in entries if e["path"].endswith("short.wav")]
    dataset = _dataset(short, random_segments=False)
    item = dataset[0]
    assert len(dataset) == 1 and int(item["padding_mask"].sum()) == 12000
    assert item["audio"][0, 12000:].abs().max() == 0
    assert item["audio"][0, :12000].abs().max() > 0.4
    with pytest.raises(ConfigError, match="none of the 1 files lasts 0.800 s"):
        _dataset(short, min_segment_ratio=0.8)


def test_min_segment_ratio_bounds_the_padding(entries):
    dataset = _dataset(entries, num_samples=200, min_segment_ratio=0.75)
    assert min(int(dataset[i]["padding_mask"].sum()) for i in range(200)) >= 12000


def test_what_no_batch_could_read_is_refused_when_the_split_is_built(entries, caplog):
    """A stereo file under channels=6 stopped the run at the batch that drew it; an empty
    manifest read "none of the 0 files lasts ..."; files too short are counted in the log."""
    with pytest.raises(ConfigError, match=r"dataset: channels=6, but .*long.wav has 2; use "
                                          r"channels=1, channels<=2, or mono sources"):
        SegmentDataset(entries, 16000, 6, 1.0)
    assert SegmentDataset(entries[1:], 16000, 6, 1.0).channels == 6  # mono files repeat
    with pytest.raises(ConfigError, match="dataset: the manifest lists no files"):
        SegmentDataset([], 16000, 1, 1.0)
    with caplog.at_level(logging.INFO):
        SegmentDataset(entries, 16000, 1, 4.0, min_segment_ratio=1.0)
    assert "2 of 3 files last under 4.000 s (min_segment_ratio * segment_duration)" in caplog.text


def test_duration_weighting(entries):
    counts = {}
    for weighted in (False, True):
        dataset = _dataset(entries, num_samples=2000, weighted=weighted)
        counts[weighted] = Counter(dataset.locate(i)[0] for i in range(2000))
    assert all(abs(counts[False][f] - 667) < 100 for f in range(3))
    # weighted: 6 s, 3 s, 0.75 s of 9.75 s in all
    assert abs(counts[True][0] - 1231) < 100 and abs(counts[True][2] - 154) < 60


def test_fixed_segments_cover_files_and_ignore_the_epoch(entries):
    assert fixed_seeks(5.0, 2.0, 0.5) == [0.0, 2.0, 4.0]
    assert fixed_seeks(4.9, 2.0, 0.5) == [0.0, 2.0]
    dataset = _dataset(entries, random_segments=False)
    assert len(dataset) == 6 + 3 + 1
    first = [dataset.locate(i) for i in range(len(dataset))]
    dataset.set_epoch(5)
    assert [dataset.locate(i) for i in range(len(dataset))] == first
    assert first[:3] == [(0, 0.0), (0, 1.0), (0, 2.0)]
    spread = _dataset(entries, random_segments=False, num_samples=3)
    assert [spread.locate(i)[0] for i in range(3)] == [0, 0, 1]


def test_broken_file_is_reported_and_dropped_not_replaced(entries, caplog):
    dataset = _dataset(entries, random_segments=False)
    long_path = entries[0]["path"]
    with open(long_path, "r+b") as f:  # rewritten after the manifest: now garbage
        f.write(np.random.default_rng(0).bytes(64))
    sf.write(entries[1]["path"], np.full((100, 1), np.nan), 22050, format="WAV", subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        batch = collate_segments([dataset[0], dataset[6], dataset[9]])
    assert batch["audio"].shape == (1, 1, 16000)
    assert [info["path"] for info in batch["info"]] == [entries[2]["path"]]
    assert long_path in caplog.text and entries[1]["path"] in caplog.text
    os.remove(entries[2]["path"])  # deleted after the manifest
    empty = collate_segments([dataset[9]])
    assert empty["audio"].shape == (0, 1, 16000) and empty["info"] == []
    assert empty["padding_mask"].shape == (0, 16000)


def test_resampled_stereo_source_keeps_its_content(entries):
    dataset = _dataset(entries[:1], random_segments=False)
    audio = dataset[2]["audio"][0]
    expected = 0.75 * 0.5  # mean of the two channels' amplitudes
    assert audio.abs().max() == pytest.approx(expected, abs=0.01)
    assert int(torch.fft.rfft(audio).abs().argmax()) == 440


def test_a_file_cut_short_after_the_manifest_is_refused_not_padded(entries, caplog):
    dataset = _dataset(entries, random_segments=False)
    long_path = entries[0]["path"]  # 6 s, 44.1 kHz stereo 16-bit: 4 bytes a frame
    os.truncate(long_path, 44 + int(2.5 * 44100) * 4)
    with caplog.at_level(logging.WARNING):
        whole, cut, gone = dataset[0], dataset[2], dataset[4]
    assert "error" not in whole and whole["padding_mask"].all()
    assert "where its manifest entry (6.000 s) gives 1.000 s" in cut["error"]
    assert "rebuild it with `audiotools manifest`" in cut["error"] and "error" in gone
    assert collate_segments([whole, cut, gone])["audio"].shape == (1, 1, 16000)
    short = dataset[9]  # a file shorter than a segment is padded as its entry says
    assert "error" not in short and short["padding_mask"].sum() == 12000
    estimated = {**entries[0], "duration": 60.0}
    del estimated["frames"]  # a duration from a header (a shard sample without its entry)
    assert "error" not in _dataset([estimated], random_segments=False)[2]
