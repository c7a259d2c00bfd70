from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from audiotools.data.builders import build_audio_datasets, resolve_data_path
from audiotools.data.manifest import read_manifest
from audiotools.data.segments import SegmentDataset, collate_segments
from audiotools.data.shards import ShardDataset, write_shards
from audiotools.environment import resolve_path
from audiotools.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DSET = REPO / "config" / "dset"
MUSIC = REPO / "audiotools" / "datasets" / "music_small"


def test_shipped_music_set_is_small_real_and_complete():
    entries = {split: read_manifest(MUSIC / f"{split}.jsonl")
               for split in ("train", "valid", "evaluate")}
    every = [e for split in entries.values() for e in split]
    assert [len(entries[s]) for s in ("train", "valid", "evaluate")] == [32, 4, 4]
    assert len({e["path"] for e in every}) == 40
    assert 9 * 60 < sum(e["duration"] for e in every) < 12 * 60
    assert all((e["sample_rate"], e["channels"]) == (16000, 1) for e in every)
    assert all(Path(e["path"]).is_file() and e["rms"] > 0.02 for e in every)
    assert all({"description", "genre", "bpm", "instruments"} <= e["meta"].keys() for e in every)
    assert len({e["meta"]["ensemble"] for e in every}) >= 15
    assert sum(p.stat().st_size for p in MUSIC.rglob("*")) < 5e6


def test_music_small_config_builds_every_split():
    cfg = OmegaConf.load(DSET / "music_small.yaml")
    datasets = build_audio_datasets(cfg, seed=1)
    assert sorted(datasets) == ["evaluate", "generate", "train", "valid"]
    train = datasets["train"]
    assert isinstance(train, SegmentDataset) and train.random_segments and len(train) == 1024
    assert train.weights is not None
    valid = datasets["valid"]
    assert not valid.random_segments and len(valid) == 4 * 16  # 16 s clips, 1 s segments
    generate = datasets["generate"]
    assert len(generate) == 4 and generate[0]["audio"].shape == (1, 64000)
    batch = next(iter(DataLoader(train, batch_size=4, collate_fn=collate_segments)))
    assert batch["audio"].shape == (4, 1, 16000) and len(batch["info"]) == 4
    assert "description" in batch["info"][0]["meta"]


def test_shards_source_gives_the_same_items(tmp_path):
    for split in ("valid",):
        write_shards(read_manifest(MUSIC / f"{split}.jsonl"), tmp_path / split, 2)
    cfg = {"source": "files", "sample_rate": 8000, "channels": 2, "segment_duration": 2.0,
           "valid": {"manifest": str(MUSIC / "valid.jsonl")}}
    files = build_audio_datasets(cfg, seed=0)["valid"]
    cfg["valid"] = {"source": "shards", "shards": str(tmp_path / "valid")}
    shards = build_audio_datasets(cfg, seed=0)["valid"]
    assert isinstance(shards, ShardDataset)
    from_shards = list(shards)
    assert len(from_shards) == len(files) == 32
    assert from_shards[5]["audio"].shape == (2, 16000)
    assert (from_shards[5]["audio"] == files[5]["audio"]).all()


def test_paths_and_errors(monkeypatch, tmp_path):
    assert resolve_data_path("//datasets/music_small/train.jsonl") == str(
        MUSIC / "train.jsonl")
    monkeypatch.setenv("AUDIOTOOLS_REFERENCE_DIR", str(tmp_path))
    assert resolve_data_path("//reference/a/b.jsonl") == str(tmp_path / "a" / "b.jsonl")
    assert resolve_data_path("pipe:aws s3 cp s3://b/x.tar -") == "pipe:aws s3 cp s3://b/x.tar -"
    base = {"sample_rate": 16000, "channels": 1, "segment_duration": 1.0}
    with pytest.raises(ConfigError, match="dataset.source = 'hdf5': Input should be 'files'"):
        build_audio_datasets({**base, "source": "hdf5", "train": {"manifest": "x"}}, 0)
    with pytest.raises(ConfigError, match=r"dataset.valid.manifest \(or dataset.manifest\)"):
        build_audio_datasets({**base, "valid": {}}, 0)
    with pytest.raises(ConfigError, match="//reference/missing.jsonl|missing.jsonl"):
        build_audio_datasets({**base, "train": {"manifest": "//reference/missing.jsonl"}}, 0)
    with pytest.raises(ConfigError, match="none of the splits"):
        build_audio_datasets(base, 0)


def test_shards_config_composes_and_streams(monkeypatch, tmp_path):
    from hydra import compose, initialize_config_dir

    monkeypatch.setenv("AUDIOTOOLS_REFERENCE_DIR", str(tmp_path))
    for split in ("train", "valid", "evaluate"):
        write_shards(read_manifest(MUSIC / f"{split}.jsonl"), tmp_path / "music_small_shards" /
                     split, samples_per_shard=8)
    with initialize_config_dir(config_dir=str(REPO / "config"), version_base="1.3"):
        cfg = compose("config", overrides=["+dset=music_small_shards"])
        weighted = compose("config", overrides=["+dset=music_small_shards",
                                                "dataset.weighted=true"])
    datasets = build_audio_datasets(cfg.dataset, seed=0)
    assert all(isinstance(d, ShardDataset) for d in datasets.values())
    train = datasets["train"]
    assert len(train) == 1024 and not train.weighted
    assert build_audio_datasets(weighted.dataset, seed=0)["train"].weighted
    item = next(iter(train))
    assert item["audio"].shape == (1, 16000) and "description" in item["info"]["meta"]


def test_typed_dataset_section_refuses_a_typo_and_builds_like_the_dict():
    from pydantic import ValidationError

    from audiotools.data.builders import AudioDataConfig
    raw = OmegaConf.to_container(OmegaConf.load(DSET / "music_small.yaml"))
    typed = AudioDataConfig.model_validate(raw)
    datasets = build_audio_datasets(typed, seed=1)
    assert sorted(datasets) == ["evaluate", "generate", "train", "valid"]
    assert len(datasets["generate"]) == 4
    with pytest.raises(ValidationError, match="segment_duraton"):
        AudioDataConfig.model_validate({**raw, "valid": {"segment_duraton": 2.0}})
    with pytest.raises(ValidationError, match="source"):
        AudioDataConfig.model_validate({**raw, "source": "s3"})


def test_a_list_of_manifests_reads_their_files_in_order():
    small, ensembles = ("//datasets/music_small/train.jsonl",
                        "//datasets/music_ensembles/train.jsonl")
    config = {"sample_rate": 16000, "channels": 1, "segment_duration": 1.0,
              "train": {"manifest": [small, ensembles], "num_samples": 4}}
    both = build_audio_datasets(config, seed=0)["train"]
    expected = [entry["path"] for manifest in (small, ensembles)
                for entry in read_manifest(resolve_path(manifest))]
    assert [entry["path"] for entry in both.entries] == expected
