from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audiotools.data.manifest import scan_tree, write_manifest
from audiotools.data.segments import SegmentDataset, collate_segments
from audiotools.data.shards import ShardDataset, shard_urls, write_shards
from audiotools.errors import ConfigError


@pytest.fixture
def entries(tmp_path, write_tone):
    for i in range(5):
        write_tone(f"set/f{i}.{'flac' if i % 2 else 'wav'}", 2.0 + i, 22050, freq=200 + 100 * i)
    found, _ = scan_tree(tmp_path / "set")
    return found


def _key(item) -> tuple[str, float]:
    return item["info"]["path"], round(item["info"]["seek_time"], 6)


def test_write_shards_and_index(entries, tmp_path):
    paths = write_shards(entries, tmp_path / "shards", samples_per_shard=2)
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    index = json.loads((tmp_path / "shards" / "index.json").read_text())
    assert [s["samples"] for s in index["shards"]] == [2, 2, 1]
    assert index["duration"] == pytest.approx(sum(e["duration"] for e in entries))
    assert shard_urls(str(tmp_path / "shards")) == [str(p) for p in paths]
    pattern = str(tmp_path / "shards/shard-{000000..000002}.tar")
    assert shard_urls(pattern) == [str(p) for p in paths]
    with pytest.raises(ConfigError, match="samples_per_shard=0"):
        write_shards(entries, tmp_path / "x", 0)
    gone = [*entries, {**entries[0], "path": str(tmp_path / "gone.wav")}]
    with pytest.raises(ConfigError, match=r"gone.wav: no such file, listed in the manifest"):
        write_shards(gone, tmp_path / "y", 2)
    assert not (tmp_path / "y").exists()


def test_fixed_pass_yields_the_same_items_as_the_segment_dataset(entries, tmp_path):
    write_shards(entries, tmp_path / "shards", samples_per_shard=2)
    files = SegmentDataset(entries, 16000, 1, 1.5, random_segments=False)
    shards = ShardDataset(str(tmp_path / "shards"), 16000, 1, 1.5, random_segments=False)
    from_files = [files[i] for i in range(len(files))]
    from_shards = list(shards)
    assert [_key(i) for i in from_shards] == [_key(i) for i in from_files]
    for a, b in zip(from_files, from_shards, strict=True):
        assert torch.equal(a["audio"], b["audio"])
        assert torch.equal(a["padding_mask"], b["padding_mask"])


def test_fixed_pass_keeps_num_samples(entries, tmp_path):
    write_shards(entries, tmp_path / "shards", samples_per_shard=2)
    every = list(ShardDataset(str(tmp_path / "shards"), 16000, 1, 1.0, random_segments=False))
    first = ShardDataset(str(tmp_path / "shards"), 16000, 1, 1.0, random_segments=False,
                         num_samples=3)
    assert len(every) > 3 and len(first) == 3
    assert [_key(i) for i in first] == [_key(i) for i in every[:3]]


def test_random_stream_is_deterministic_per_epoch_and_split_over_workers(entries, tmp_path):
    write_shards(entries, tmp_path / "shards", samples_per_shard=1)
    dataset = ShardDataset(str(tmp_path / "shards"), 16000, 1, 1.0, num_samples=20,
                           segments_per_file=5, shuffle_buffer=4, seed=7)

    def epoch(number: int) -> list[list[tuple[str, float]]]:
        dataset.set_epoch(number)
        loader = DataLoader(dataset, batch_size=5, num_workers=2, collate_fn=collate_segments)
        return [[_key({"info": info}) for info in batch["info"]] for batch in loader]

    first = epoch(0)
    keys = [key for batch in first for key in batch]
    assert len(keys) == len(dataset) == 20 and len(set(keys)) == 20
    assert epoch(0) == first
    assert epoch(1) != first
    # Batches alternate between the two workers; each reads its own shards (2 or 3 of 5, with
    # 5 segments per file: 10 items each without cycling).
    files = [{path for path, _ in first[i] + first[i + 2]} for i in (0, 1)]
    assert files[0] and files[1] and not files[0] & files[1]


def test_weighted_stream_draws_files_in_proportion_to_their_duration(entries, tmp_path):
    """The files last 2, 3, 4, 5 and 6 s: weighted, each second is drawn about equally often,
    as the files dataset's weighting draws them; unweighted, each file as often as another."""
    write_shards(entries, tmp_path / "shards", samples_per_shard=1)

    def per_file(weighted: bool) -> dict[float, int]:
        stream = ShardDataset(str(tmp_path / "shards"), 16000, 1, 0.5, num_samples=1000,
                              segments_per_file=4, seed=3, weighted=weighted)
        counts: dict[float, int] = {}
        for item in stream:
            duration = round(item["info"]["seconds_total"])
            counts[duration] = counts.get(duration, 0) + 1
        return counts

    uniform, weighted = per_file(False), per_file(True)
    assert sorted(uniform) == sorted(weighted) == [2, 3, 4, 5, 6]
    assert set(uniform.values()) == {200}
    per_second = [weighted[d] / d for d in sorted(weighted)]
    assert max(per_second) / min(per_second) < 1.1
    assert sum(weighted.values()) == 1000


def test_pipe_and_corrupt_shards(entries, tmp_path):
    write_shards(entries, tmp_path / "shards", samples_per_shard=2)
    shard = tmp_path / "shards" / "shard-000001.tar"
    piped = ShardDataset(f"pipe:cat {shard}", 16000, 1, 1.0, random_segments=False)
    assert {item["info"]["path"] for item in piped} == {entries[2]["path"], entries[3]["path"]}
    shard.write_bytes(shard.read_bytes()[:1000])  # truncated mid-member
    dataset = ShardDataset(str(tmp_path / "shards"), 16000, 1, 1.0, random_segments=False)
    with pytest.warns(UserWarning, match="shard-000001.tar"):
        paths = {item["info"]["path"] for item in dataset}
    assert paths == {entries[i]["path"] for i in (0, 1, 4)}


def test_a_sample_without_its_audio_is_skipped_and_any_readable_format_is_kept(
        entries, tmp_path, caplog):
    """A shard cut between a sample's JSON and its audio skips that sample (it raised); files
    of other extensions (`.caf`, none) are stored under their format's name and read back."""
    import shutil

    import webdataset as wds

    caf, bare = tmp_path / "set" / "f.caf", tmp_path / "set" / "noext"
    sf.write(caf, sf.read(entries[0]["path"])[0], 22050, format="CAF")
    shutil.copy(entries[1]["path"], bare)  # a flac without its extension
    found, _ = scan_tree(tmp_path / "set")
    write_shards(found, tmp_path / "shards", samples_per_shard=8)
    dataset = ShardDataset(str(tmp_path / "shards"), 16000, 1, 1.0, random_segments=False)
    assert {item["info"]["path"] for item in dataset} == {e["path"] for e in found}
    cut = tmp_path / "cut" / "shard-000000.tar"
    cut.parent.mkdir()
    with wds.TarWriter(str(cut)) as sink:
        sink.write({"__key__": "000000000", "json": json.dumps(entries[0]).encode()})
        sink.write({"__key__": "000000001", "wav": open(entries[2]["path"], "rb").read(),
                    "json": json.dumps(entries[2]).encode()})
    items = list(ShardDataset(str(cut), 16000, 1, 1.0, random_segments=False))
    assert {item["info"]["path"] for item in items} == {entries[2]["path"]}
    assert "Skipping shard sample 000000000" in caplog.text and "no audio member" in caplog.text


def test_shards_from_the_command_line(entries, tmp_path):
    from audiotools import cli

    write_manifest(entries, tmp_path / "m.jsonl")
    assert cli.main(["shards", str(tmp_path / "m.jsonl"), str(tmp_path / "out"),
                     "--samples-per-shard", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.json", "shard-000000.tar", "shard-000001.tar"]
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    write_manifest(entries[:1], tmp_path / "one.jsonl")
    with pytest.raises(ConfigError, match=r"out already holds shards \(index.json, "
                                          r"shard-000000.tar, shard-000001.tar\); choose"):
        shards_command(str(tmp_path / "one.jsonl"), str(tmp_path / "out"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    # --force replaces them, and no shard of the earlier set is left for a pattern to read.
    assert cli.main(["shards", str(tmp_path / "one.jsonl"), str(tmp_path / "out"),
                     "--force"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.json", "shard-000000.tar"]
    streamed = ShardDataset(str(tmp_path / "out/shard-{000000..000001}.tar"), 16000, 1, 1.0,
                            random_segments=False)
    with pytest.warns(UserWarning, match="shard-000001.tar"):
        assert {item["info"]["path"] for item in streamed} == {entries[0]["path"]}


def shards_command(*argv: str) -> int:
    import argparse

    from audiotools.commands import shards
    parser = argparse.ArgumentParser()
    shards.add_arguments(parser)
    return shards.run(parser.parse_args(list(argv)))


def test_configuration_errors(entries, tmp_path):
    write_shards(entries, tmp_path / "shards", samples_per_shard=5)
    with pytest.raises(ConfigError, match="need num_samples"):
        ShardDataset(str(tmp_path / "shards"), 16000, 1, 1.0)
    dataset = ShardDataset(str(tmp_path / "shards"), 16000, 1, 1.0, num_samples=4)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_segments)
    with pytest.raises(ConfigError, match="has no shard"):
        list(loader)


def test_a_shard_the_disk_refuses_names_what_the_folder_holds(entries, tmp_path, monkeypatch):
    import errno

    import webdataset as wds

    from audiotools.errors import StorageError
    write_shards(entries, tmp_path / "shards", samples_per_shard=2)
    written = []
    real_write = wds.TarWriter.write

    def fills_the_disk(self, sample):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(sample["__key__"])
        return real_write(self, sample)

    monkeypatch.setattr(wds.TarWriter, "write", fills_the_disk)
    with pytest.raises(StorageError, match=(
            r"shard-000001.tar: cannot write it \(No space left on device\).* holds 1 of the 3 "
            r"shards and no index.json of them: make room, then run the same command with "
            r"--force")):
        write_shards(entries, tmp_path / "shards", samples_per_shard=2, force=True)
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]  # no temporary, no index


def test_a_source_that_cannot_be_read_is_named_and_the_index_kept(entries, tmp_path, monkeypatch):
    import errno
    from pathlib import Path
    write_shards(entries, tmp_path / "shards", samples_per_shard=2)
    index = (tmp_path / "shards" / "index.json").read_text()
    real_read = Path.read_bytes

    def unreadable(path):
        if path.name == Path(entries[3]["path"]).name:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", unreadable)
    with pytest.raises(PermissionError, match=Path(entries[3]["path"]).name):
        write_shards(entries, tmp_path / "other", samples_per_shard=2)
    assert (tmp_path / "shards" / "index.json").read_text() == index


def test_encoded_shards_refused_midway_can_be_written_again_with_force(entries, tmp_path,
                                                                        monkeypatch):
    import errno

    import webdataset as wds

    from audiotools.errors import StorageError
    out = tmp_path / "shards"
    write_shards(entries, out, samples_per_shard=2)
    (out / "codec.json").write_text("{}")  # as `audiotools shards --codec` leaves it
    real_write = wds.TarWriter.write
    calls = []

    def fills_the_disk(self, sample):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, sample)

    with monkeypatch.context() as full:
        full.setattr(wds.TarWriter, "write", fills_the_disk)
        with pytest.raises(StorageError, match="run the same command with --force"):
            write_shards(entries, out, samples_per_shard=2, force=True)
    assert not (out / "index.json").exists()
    assert len(write_shards(entries, out, samples_per_shard=2, force=True)) == 3


def test_an_index_the_disk_refuses_says_the_shards_are_not_indexed(entries, tmp_path,
                                                                    monkeypatch):
    import errno

    from audiotools.data import shards
    from audiotools.errors import StorageError
    write_shards(entries, tmp_path / "shards", samples_per_shard=2)

    def full(path, text):
        with shards.writing(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(shards, "write_text_atomic", full)
    with pytest.raises(StorageError, match=r"index.json: cannot write it.*not indexed"):
        write_shards(entries[:2], tmp_path / "shards", samples_per_shard=1, force=True)
    assert not (tmp_path / "shards" / "index.json").exists()  # the old one listed 3 shards
