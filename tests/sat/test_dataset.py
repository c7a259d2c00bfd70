"""SAT dataset configs: audio_dir scanned into manifest entries, WebDataset shards listed
(local folders, S3 through the AWS CLI), SAT's shard layout read, the rest refused."""
from __future__ import annotations

import io
import json
import os
import stat

import pytest
import torch
import webdataset as wds

from audiotools.data.audio import audio_write
from audiotools.data.shards import ShardDataset
from audiotools.errors import ConfigError
from audiotools.sat.dataset import read_source
from audiotools.sat.notes import Notes


def _read(config: dict, notes: Notes | None = None):
    return read_source(config, "dataset_config", notes or Notes(), workers=2)


def test_audio_dir_scans_sat_audio_extensions_and_reports_broken_files(audio_dir):
    (audio_dir / "sub").mkdir()
    (audio_dir / "sub" / "broken.wav").write_bytes(b"RIFF not really")
    source = _read({"dataset_type": "audio_dir", "random_crop": False,
                    "datasets": [{"id": "music", "path": str(audio_dir)}]})
    assert source.kind == "files" and not source.random_crop
    assert len(source.entries) == 6 and all(e["duration"] > 10 for e in source.entries)
    assert [r.path.rsplit("/", 1)[-1] for r in source.rejections] == ["broken.wav"]
    # notes.txt is not an audio extension SAT reads: skipped, not rejected.


def test_custom_metadata_module_is_checked_not_run(audio_dir, tmp_path):
    module = tmp_path / "meta.py"
    module.write_text("raise SystemExit('never run')\n\ndef get_custom_metadata(info, audio):\n"
                      "    return {'prompt': info['relpath']}\n")
    config = {"dataset_type": "audio_dir", "datasets": [
        {"id": "music", "path": str(audio_dir), "custom_metadata_module": str(module),
         "filelist": "x.txt"}]}
    notes = Notes()
    source = _read(config, notes)
    # What it would feed depends on the model: the migration names it (tests/sat/test_migrate.py).
    assert source.metadata_modules == [
        f"dataset_config.datasets[0] (music).custom_metadata_module={str(module)!r}"]
    assert notes.unsupported[0].startswith("dataset_config.datasets[0] keys ['filelist']: "
                                           "ignored")
    module.write_text("def something_else(): pass\n")
    with pytest.raises(ConfigError, match="defines no get_custom_metadata"):
        _read(config)
    config["datasets"][0]["custom_metadata_module"] = str(tmp_path / "missing.py")
    with pytest.raises(ConfigError, match=r"datasets\[0\] \(music\).custom_metadata_module=.*"
                                          "no such file"):
        _read(config)


def _shard(path, items: dict[str, tuple[bytes, str, dict]]) -> None:
    """A tar in SAT's WebDataset layout: <key>.<ext> audio and <key>.json metadata."""
    with wds.TarWriter(str(path)) as sink:
        for key, (data, ext, meta) in items.items():
            sink.write({"__key__": key, ext: data, "json": json.dumps(meta).encode()})


def _flac(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    import soundfile
    soundfile.write(buffer, 0.1 * torch.randn(int(seconds * rate)).numpy(), rate, format="FLAC")
    return buffer.getvalue()


def test_local_webdataset_is_listed_and_read_in_sat_layout(tmp_path):
    folder = tmp_path / "shards" / "part"
    folder.mkdir(parents=True)
    _shard(folder / "b.tar", {"000": (_flac(1.5), "flac", {"prompt": "rain"}),
                              "001": (b"garbage", "wav", {"prompt": "bad"})})
    _shard(folder / "a.tar", {"002": (_flac(2.0, 22050), "flac", {"prompt": "wind"})})
    notes = Notes()
    source = _read({"dataset_type": "wds", "epoch_steps": 10, "volume_norm": True,
                    "datasets": [{"id": "local", "path": str(tmp_path / "shards")}]}, notes)
    assert source.shards == [str(folder / "a.tar"), str(folder / "b.tar")]
    assert source.epoch_steps == 10 and "volume_norm=True" in notes.unsupported[0]
    assert any("SAT draws shards with replacement" in line for line in notes.differences)
    notes = Notes()
    _read({"dataset_type": "wds", "drop_last": False, "resampled_shards": False,
           "datasets": [{"id": "local", "path": str(tmp_path / "shards")}]}, notes)
    assert not any("with replacement" in line for line in notes.differences)
    assert any("drop_last=false: audiotools drops the last partial training batch" in line
               for line in notes.unsupported)
    items = list(ShardDataset(source.shards, 16000, 1, 1.0, random_segments=False,
                              min_segment_ratio=0.5))
    assert [item["info"]["meta"] for item in items] == [{"prompt": "wind"}] * 2 + [
        {"prompt": "rain"}] * 2  # the broken sample is skipped with a warning
    assert items[0]["info"]["seconds_total"] == pytest.approx(2.0)
    assert items[0]["audio"].shape == (1, 16000)


def test_s3_shards_are_listed_with_the_aws_cli(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "aws"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\n"
                    "echo '2024-01-02 03:04:05    1024 data/audio/shard 0.tar'\n"
                    "echo '2024-01-02 03:04:05      17 data/audio/readme.txt'\n"
                    "echo '2024-01-02 03:04:05    2048 data/audio/sub/shard1.tar'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    source = _read({"dataset_type": "s3", "datasets": [
        {"id": "s3", "s3_path": "s3://bucket/data/audio", "profile": "team"}]})
    assert (fake.parent / "args").read_text().split() == [
        "s3", "ls", "s3://bucket/data/audio/", "--recursive", "--profile", "team"]
    assert source.shards == [
        "pipe:aws s3 cp 's3://bucket/data/audio/shard 0.tar' - --profile team",
        "pipe:aws s3 cp s3://bucket/data/audio/sub/shard1.tar - --profile team"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="needs the AWS CLI"):
        _read({"dataset_type": "s3", "datasets": [{"id": "s3", "s3_path": "s3://b/x"}]})


@pytest.mark.parametrize("config, words", [
    ({"dataset_type": "pre_encoded", "datasets": [{"id": "x", "path": "."}]},
     "dataset_type=pre_encoded: stable-audio-tools. pre-encoded latents are not read"),
    ({"dataset_type": "wds", "pre_encoded": True, "datasets": [{"id": "x", "path": "."}]},
     "pre_encoded=true: stable-audio-tools. pre-encoded latents are not read; convert"),
    ({"dataset_type": "folder"}, "dataset_type='folder'; stable-audio-tools types audiotools "
                                 "reads: audio_dir, wds, s3"),
    ({"dataset_type": "audio_dir", "datasets": []}, "datasets must be a non-empty list"),
    ({"dataset_type": "audio_dir", "datasets": [{"path": "."}]}, r"datasets\[0\] needs an "
                                                                 "\"id\""),
    ({"dataset_type": "audio_dir", "datasets": [{"id": "x", "path": "/nonexistent"}]},
     "path '/nonexistent' is not a folder"),
    ({"dataset_type": "wds", "datasets": [{"id": "x"}]}, "give \"s3_path\""),
])
def test_bad_dataset_configs_name_the_key(config, words):
    with pytest.raises(ConfigError, match=words):
        _read(config)


def test_a_folder_without_audio_is_an_error(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    audio_write(folder / "x.wav", torch.zeros(1, 100), 16000)
    (folder / "x.wav").rename(folder / "x.aiff")  # an extension SAT does not read
    with pytest.raises(ConfigError, match="no usable audio file"):
        _read({"dataset_type": "audio_dir", "datasets": [{"id": "e", "path": str(folder)}]})
