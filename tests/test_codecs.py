"""Frozen codecs (load_codec, //recipe/, scale and statistics, identity) and pre-encoded data
(`audiotools pre-encode`, resumable, refusing another codec; segments of latents or tokens)."""
from __future__ import annotations

import json
import os

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from audiotools.cli import main as cli
from audiotools.data.audio import audio_write
from audiotools.data.builders import build_audio_datasets
from audiotools.data.pre_encoded import PreEncodedDataset, pre_encode
from audiotools.environment import CONFIG_DIR, resolve_path
from audiotools.errors import ConfigError
from audiotools.families import FAMILIES
from audiotools.io import export
from audiotools.io.codecs import load_codec
from audiotools.models.codec import Codec, DiscreteCodec, FrozenCodec, LatentStats, is_discrete

VAE = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/autoencoder/debug.yaml"))
RVQ = {**VAE, "bottleneck": {"type": "rvq", "num_quantizers": 2, "codebook_size": 16,
                             "kmeans_init": False}}


def _codec_export(tmp_path, section=VAE, name="codec.safetensors", seed=0):
    torch.manual_seed(seed)
    model = FAMILIES["autoencoder"].new_model(section, "test")
    return export.write(tmp_path / name, export.Export("autoencoder", section,
                                                       {"model": model.state_dict()}))


def _clips(tmp_path, seconds=(1.0, 2.5, 0.6)):
    entries = []
    for number, length in enumerate(seconds):
        time = torch.arange(round(length * 22050)) / 22050
        wave = 0.3 * torch.sin(2 * torch.pi * (220 + 110 * number) * time)[None]
        path = audio_write(tmp_path / f"clip{number}.wav", wave, 22050)
        entries.append({"path": str(path), "duration": length, "sample_rate": 22050,
                        "channels": 1, "meta": {"label": f"tone{number}"}})
    return entries


def test_a_loaded_codec_is_frozen_scaled_and_identified(tmp_path):
    path = _codec_export(tmp_path)
    codec = load_codec(path, scale=2.0)
    assert isinstance(codec, Codec) and not is_discrete(codec)
    codec.train()
    assert not codec.training and not codec.codec.training
    assert not any(p.requires_grad for p in codec.parameters())
    audio = torch.randn(2, 1, 4096) * 0.1
    raw = codec.encode_raw(audio)
    assert torch.allclose(codec.encode(audio), raw / 2.0)
    assert torch.allclose(codec.decode(codec.encode(audio)), codec.codec.decode(raw), atol=1e-6)
    assert raw.shape == (2, codec.latent_dim, round(4096 / 64))
    assert load_codec(path).identity == codec.identity
    assert load_codec(_codec_export(tmp_path, name="other.safetensors", seed=1)).identity \
        != codec.identity


def test_statistics_normalise_latents_and_invert(tmp_path):
    model = FAMILIES["autoencoder"].new_model(VAE, "test")
    audio = torch.randn(3, 1, 8192) * 0.1
    raw = model.encode(audio)
    stats = LatentStats.measure(list(raw))
    codec = FrozenCodec(model, "test", scale=1.5, stats=stats)
    normalised = codec.encode(audio)
    assert normalised.mean(dim=(0, 2)).abs().max() < 1e-4
    assert torch.allclose(normalised.std(dim=(0, 2)) * 1.5, torch.ones(VAE["latent_dim"]),
                          atol=2e-2)
    assert torch.allclose(codec.decode(normalised), model.decode(raw), atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        FrozenCodec(model, "test", stats=LatentStats([0.0], [1.0]))


def test_statistics_are_merged_clip_by_clip_as_one_concatenation_would_give():
    generator = torch.Generator().manual_seed(0)
    clips = [torch.randn(4, frames, generator=generator) * scale + shift
             for frames, scale, shift in ((7, 1.0, 0.0), (1, 3.0, 5.0), (300, 0.5, -2.0),
                                          (0, 1.0, 0.0), (41, 2.0, 1.0))]
    whole = torch.cat([clip.double() for clip in clips], dim=1)
    stats = LatentStats.measure(iter(clips))  # a generator: pre-encode reads file by file
    assert torch.allclose(torch.tensor(stats.mean, dtype=torch.float64), whole.mean(dim=1),
                          rtol=1e-12, atol=1e-12)
    assert torch.allclose(torch.tensor(stats.std, dtype=torch.float64), whole.std(dim=1),
                          rtol=1e-12)
    with pytest.raises(ConfigError, match="at least 2 latent frames.*gave 1"):
        LatentStats.measure([torch.zeros(4, 1), torch.zeros(4, 0)])


def test_discrete_codecs_and_refusals(tmp_path):
    tokens_codec = load_codec(_codec_export(tmp_path, RVQ, "rvq.safetensors"), discrete=True)
    assert isinstance(tokens_codec, DiscreteCodec)
    assert (tokens_codec.num_codebooks, tokens_codec.cardinality) == (2, 16)
    tokens = tokens_codec.encode_to_tokens(torch.randn(1, 1, 2048) * 0.1)
    assert tokens.shape == (1, 2, 32) and tokens.dtype == torch.int64
    with pytest.raises(ConfigError, match="continuous latents .*bottleneck 'vae'.*rvq or fsq"):
        load_codec(_codec_export(tmp_path), discrete=True)
    cnn = {"channels": [4], "pools": [[2, 2]], "n_mels": 16, "num_classes": 2}
    classifier = export.write(tmp_path / "cnn.safetensors", export.Export(
        "classifier", cnn, {"model": FAMILIES["classifier"].new_model(cnn, "t").state_dict()}))
    with pytest.raises(ConfigError, match="a classifier model is not a codec"):
        load_codec(classifier)


def test_recipe_reference_names_the_command_until_trained(dora_dir):
    with pytest.raises(ConfigError, match=r"//recipe/autoencoder/debug is XP \w+, which has not "
                                          r"been trained.*dora run solver=autoencoder/debug"):
        resolve_path("//recipe/autoencoder/debug")
    from audiotools.train import main
    folder = main.get_xp(["solver=autoencoder/debug"]).folder
    folder.mkdir(parents=True)
    (folder / "checkpoint.th").write_bytes(b"")
    assert resolve_path("//recipe/autoencoder/debug") == folder


def test_pre_encode_writes_resumes_and_refuses_another_codec(tmp_path):
    codec = load_codec(_codec_export(tmp_path))
    entries = _clips(tmp_path)
    out = tmp_path / "latents"
    written = pre_encode(codec, {"train": entries, "valid": entries[:1]}, out)
    assert written["kind"] == "latents" and written["identity"] == codec.identity
    index = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [line["frames"] for line in index] == [250, 625, 150]  # 16 kHz / hop 64, padded up
    assert index[1]["meta"] == {"label": "tone1"} and index[1]["source"] == entries[1]["path"]
    assert len(written["stats"]["mean"]) == VAE["latent_dim"]
    first = (out / "train/000001.safetensors").stat().st_mtime_ns
    pre_encode(codec, {"train": entries}, out)  # a rerun keeps what is there
    assert (out / "train/000001.safetensors").stat().st_mtime_ns == first
    assert pre_encode(codec, {"evaluate": entries[1:]}, out)["stats"] == written["stats"]
    assert json.loads((out / "codec.json").read_text())["stats"] == written["stats"]
    other = load_codec(_codec_export(tmp_path, name="other.safetensors", seed=3))
    with pytest.raises(ConfigError, match="encoded by another codec.*identity"):
        pre_encode(other, {"train": entries}, out)
    # Another file list over the same folder would keep file 0's latents under file 1's name.
    kept = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    with pytest.raises(ConfigError, match=r"valid/000000.safetensors encodes .*clip0.wav, but "
                                          r"file 0 of split valid is now .*clip1.wav"):
        pre_encode(codec, {"valid": entries[1:]}, out)
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == kept
    # A file written before the source was recorded in it is checked against the index.
    target = out / "valid/000000.safetensors"
    save_file(load_file(target), target)
    with pytest.raises(ConfigError, match=r"000000.safetensors encodes .*clip0.wav"):
        pre_encode(codec, {"valid": entries[1:]}, out)
    # A folder of other files (a dataset's own manifests) is not written into.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train.jsonl").write_text("my manifest\n")
    with pytest.raises(ConfigError, match=r"mine holds files and is not a pre-encoded folder"):
        pre_encode(codec, {"train": entries}, mine)
    assert [p.name for p in mine.iterdir()] == ["train.jsonl"]


@pytest.mark.parametrize("section", [VAE, RVQ], ids=["latents", "tokens"])
def test_pre_encode_reads_a_file_a_block_at_a_time(tmp_path, monkeypatch, section):
    """A long file is read, converted and encoded a block at a time (it was read whole,
    about 1.5 GB for an hour of 44.1 kHz stereo): the same latents to float rounding, the
    same tokens, as the whole file's in the same windows."""
    from audiotools.data import audio as audio_module
    codec = load_codec(_codec_export(tmp_path, section), discrete=section is RVQ)
    clip = 0.1 * torch.randn(2, 44100 * 3 + 77, generator=torch.Generator().manual_seed(0))
    source = audio_write(tmp_path / "long.wav", clip, 44100, subtype="FLOAT")
    whole, _ = audio_module.audio_read(source, sample_rate=16000, channels=1)
    expected = (codec.encode_to_tokens(whole[None], 1.0) if section is RVQ
                else codec.encode_raw(whole[None], 1.0))[0]
    monkeypatch.setattr("audiotools.data.pre_encoded.audio_read", None)  # never whole
    pre_encode(codec, {"train": [{"path": str(source), "duration": 3.0}]}, tmp_path / "out",
               chunk_seconds=1.0)
    [stored] = load_file(tmp_path / "out/train/000000.safetensors").values()
    assert stored.shape == expected.shape
    if section is RVQ:
        assert torch.equal(stored, expected)
    else:
        torch.testing.assert_close(stored, expected, atol=1e-5, rtol=0)


def test_a_folder_another_run_is_pre_encoding_is_refused(tmp_path):
    """Two runs into one folder mixed their files: each index named latents the other wrote."""
    from audiotools.io.locking import take_lock
    codec = load_codec(_codec_export(tmp_path))
    out = tmp_path / "latents"
    out.mkdir()
    with take_lock(out / ".lock"):  # as the other run holds it
        with pytest.raises(ConfigError, match=(
                rf"{out} is being pre-encoded by another run \(pid {os.getpid()} holds "
                rf"{out}/.lock\): wait for it to finish")):
            pre_encode(codec, {"train": _clips(tmp_path)}, out)
    assert [p.name for p in out.iterdir()] == [".lock"]
    pre_encode(codec, {"train": _clips(tmp_path)}, out)  # once it is done
    assert (out / "train.jsonl").exists()


def test_a_damaged_pre_encoded_folder_is_named_file_by_file(tmp_path):
    codec = load_codec(_codec_export(tmp_path))
    entries = _clips(tmp_path)
    out = tmp_path / "latents"
    pre_encode(codec, {"train": entries}, out)
    target = out / "train/000001.safetensors"
    target.write_bytes(target.read_bytes()[:100])  # cut short
    for read in (lambda: pre_encode(codec, {"train": entries}, out),
                 lambda: PreEncodedDataset(out, "train", 1.0, random_segments=False)[1]):
        with pytest.raises(ConfigError, match=r"000001.safetensors: damaged pre-encoded file "
                                              r".*delete it and re-run `audiotools pre-encode`"):
            read()
    target.unlink()
    with pytest.raises(ConfigError, match=r"000001.safetensors: a pre-encoded file its split "
                                          r"lists is missing; re-run"):
        PreEncodedDataset(out, "train", 1.0, random_segments=False)[1]
    pre_encode(codec, {"train": entries}, out)  # the way out: it encodes what is missing
    assert PreEncodedDataset(out, "train", 1.0, random_segments=False)[1]["latents"].shape[0] \
        == VAE["latent_dim"]
    (out / "train.jsonl").write_text('{"file": "train/000000.safetensors"\n')
    with pytest.raises(ConfigError, match=r"train.jsonl: damaged"):
        PreEncodedDataset(out, "train", 1.0)
    (out / "codec.json").write_text("{")
    with pytest.raises(ConfigError, match=r"codec.json: damaged"):
        pre_encode(codec, {"train": entries}, out)


def test_pre_encoded_segments_are_deterministic_and_padded(tmp_path):
    codec = load_codec(_codec_export(tmp_path))
    out = tmp_path / "latents"
    pre_encode(codec, {"train": _clips(tmp_path)}, out)
    fixed = PreEncodedDataset(out, "train", 1.0, random_segments=False)
    assert len(fixed) == 5  # 1 + 3 (2.5 s: the last half-full) + 1 (0.6 s)
    item = fixed[3]
    assert item["latents"].shape == (8, 250) and item["padding_mask"].sum() == 125
    assert item["info"]["seconds_start"] == 2.0 and item["info"]["meta"]["label"] == "tone1"
    drawn = PreEncodedDataset(out, "train", 1.0, seed=4, num_samples=6)
    drawn.set_epoch(2)
    again = PreEncodedDataset(out, "train", 1.0, seed=4, num_samples=6)
    again.set_epoch(2)
    assert all(torch.equal(drawn[i]["latents"], again[i]["latents"]) for i in range(6))


def test_tokens_and_a_dset_pointing_at_pre_encoded_data(tmp_path):
    codec = load_codec(_codec_export(tmp_path, RVQ, "rvq.safetensors"))
    out = tmp_path / "tokens"
    assert pre_encode(codec, {"train": _clips(tmp_path)}, out)["kind"] == "tokens"
    datasets = build_audio_datasets({"source": "pre_encoded", "pre_encoded": str(out),
                                     "segment_duration": 0.5, "train": {"num_samples": 4}}, 0)
    item = datasets["train"][0]
    assert item["tokens"].shape == (2, 125) and item["tokens"].dtype == torch.int64
    assert int(item["tokens"].max()) < 16


def test_pre_encode_command(tmp_path, capsys):
    path = _codec_export(tmp_path)
    from audiotools.data.manifest import write_manifest
    manifest = write_manifest(_clips(tmp_path), tmp_path / "m.jsonl")
    assert cli(["pre-encode", str(path), str(manifest), str(tmp_path / "out")]) == 0
    assert "latents of train 3 files at 250 frames/s" in capsys.readouterr().out
    assert cli(["pre-encode", str(path), "no_such_dset", str(tmp_path / "out")]) == 2
    assert "known dsets: " in (err := capsys.readouterr().err) and "music_small," in err


def test_shards_neither_overwrite_a_pre_encoded_folder_nor_mix_in_another_codec(tmp_path,
                                                                                 capsys):
    """`audiotools shards ... --force` into a pre-encoded folder deleted its codec.json (or
    put another codec's there), and shards of another codec's latents trained beside a
    pre-encoded folder with no check."""
    out, other = tmp_path / "latents", tmp_path / "other"
    pre_encode(load_codec(_codec_export(tmp_path)), {"train": _clips(tmp_path)}, out)
    pre_encode(load_codec(_codec_export(tmp_path, name="b.safetensors", seed=1)),
               {"train": _clips(tmp_path)}, other)
    kept = (out / "codec.json").read_text()
    assert cli(["shards", str(other / "train.jsonl"), str(out), "--force"]) == 2
    refusal = capsys.readouterr().err
    assert "is a pre-encoded dataset (its codec.json, no shard index.json)" in refusal
    assert (out / "codec.json").read_text() == kept and not list(out.glob("shard-*.tar"))
    assert cli(["shards", str(other / "train.jsonl"), str(tmp_path / "sh")]) == 0
    section = {"source": "pre_encoded", "pre_encoded": str(out), "segment_duration": 1.0,
               "train": {"random_segments": False, "shards": str(tmp_path / "sh")}}
    with pytest.raises(ConfigError, match=r"dataset.train.shards=.*sh was encoded by another "
                                          r"codec .*identity"):
        build_audio_datasets(section, 0)


def test_the_autoencoder_refuses_pre_encoded_data(dora_dir):
    from audiotools.train import main
    with pytest.raises(ConfigError, match="dataset.source=pre_encoded .*trains on audio"):
        main.get_xp(["solver=autoencoder/debug", "dataset.source=pre_encoded"])


def test_a_stable_audio_tools_vae_is_a_codec():
    from pathlib import Path
    sat = Path(__file__).parent / "sat"
    codec = load_codec(sat / "fixtures/tiny_vae.safetensors",
                       sat_model_config=sat / "configs/tiny_vae.json", scale=0.5)
    assert codec.describe()["source"].endswith("tiny_vae.safetensors")
    audio = torch.randn(1, codec.channels, 4096) * 0.1
    assert torch.allclose(codec.encode(audio), codec.codec.encode(audio) / 0.5)


def test_pre_encoded_shards_stream_the_same_segments(tmp_path):
    codec = load_codec(_codec_export(tmp_path))
    out = tmp_path / "latents"
    pre_encode(codec, {"train": _clips(tmp_path)}, out)
    assert cli(["shards", str(out / "train.jsonl"), str(tmp_path / "shards"),
                "--samples-per-shard", "2"]) == 0
    assert (tmp_path / "shards/codec.json").read_text() == (out / "codec.json").read_text()
    section = {"source": "pre_encoded", "pre_encoded": str(tmp_path / "shards"),
               "segment_duration": 1.0, "train": {"random_segments": False}}
    streamed = list(build_audio_datasets({**section, "shards": str(tmp_path / "shards")},
                                         0)["train"])
    files = PreEncodedDataset(out, "train", 1.0, random_segments=False)
    assert len(streamed) == len(files) == 5
    for left, right in zip(streamed, (files[i] for i in range(len(files))), strict=True):
        assert torch.equal(left["latents"], right["latents"])
        assert torch.equal(left["padding_mask"], right["padding_mask"])
        assert left["info"]["meta"] == right["info"]["meta"]
    drawn = build_audio_datasets({**section, "shards": str(tmp_path / "shards"),
                                  "weighted": True, "train": {"num_samples": 6}}, 0)["train"]
    assert drawn.weighted and len(list(drawn)) == 6
    drawn.check_codec(codec, "dataset.train")


@pytest.mark.parametrize("edit", [{"mean": [0.0]}, {"std": "abc"}, {"std": 0.0}])
def test_edited_statistics_in_codec_json_are_one_error_naming_it(tmp_path, edit):
    """7 means for 8 channels raised ValueError in the model, a text std a TypeError."""
    import json

    out = tmp_path / "latents"
    pre_encode(load_codec(_codec_export(tmp_path)), {"train": _clips(tmp_path)}, out)
    recorded = json.loads((out / "codec.json").read_text())
    stats = recorded["stats"]
    for key, value in edit.items():
        stats[key] = value if isinstance(value, list | str) else [value] * len(stats[key])
    (out / "codec.json").write_text(json.dumps(recorded))
    with pytest.raises(ConfigError, match=r"codec.json: stats must hold mean and std, \d+ "
                                          r"finite numbers each \(std above 0\)"):
        PreEncodedDataset(out, "train", 1.0)
