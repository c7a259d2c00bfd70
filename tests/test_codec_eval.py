"""benchmarks/codec_eval.py: figures of a tiny codec on two files of other rates and channel
counts are finite, a perfect codec scores as one, a discrete codec's bitrate is its tokens',
its token statistics count codes, and user errors are one message naming the path."""
from __future__ import annotations

import json
import math
import runpy

import pytest
import torch
from omegaconf import OmegaConf

from audiotools.data.audio import audio_write
from audiotools.environment import CONFIG_DIR
from audiotools.families import FAMILIES
from audiotools.inference.autoencoder import AutoencoderPipeline
from audiotools.io import export
from tests.conftest import REPO

codec_eval = runpy.run_path(str(REPO / "benchmarks" / "codec_eval.py"), run_name="codec_eval")
VAE = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/autoencoder/debug.yaml"))
BOTTLENECKS = {"rvq": {"type": "rvq", "num_quantizers": 2, "codebook_size": 16,
                       "kmeans_init": False},
               "fsq": {"type": "fsq", "levels": [5, 3], "num_codebooks": 2}}


def _export(tmp_path, family="autoencoder", section=VAE, name="codec.safetensors"):
    torch.manual_seed(0)
    model = FAMILIES[family].new_model(section, "test")
    return export.write(tmp_path / name, export.Export(family, section,
                                                       {"model": model.state_dict()}))


@pytest.fixture
def folder(tmp_path):
    """A mono 22.05 kHz wav, a stereo 16 kHz wav one folder down, a sidecar and a text file."""
    root = tmp_path / "audio"
    (root / "sub").mkdir(parents=True)
    time = torch.arange(11025) / 22050
    audio_write(root / "a.wav", 0.3 * torch.sin(2 * torch.pi * 220 * time)[None], 22050)
    time = torch.arange(12000) / 16000
    audio_write(root / "sub" / "b.wav", 0.3 * torch.stack(
        [torch.sin(2 * torch.pi * 330 * time), torch.sin(2 * torch.pi * 440 * time)]), 16000)
    (root / "a.json").write_text('{"title": "tone"}')
    (root / "notes.txt").write_text("not audio")
    return root


def _run(*argv, tmp_path) -> dict:
    out = tmp_path / "result.json"
    assert codec_eval["main"]([*map(str, argv), "--threads", "1", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def _finite(row: dict) -> bool:
    return all(math.isfinite(row[key]) for key in ("si_snr", "mel_distance", "stft_distance",
                                                    "frame_buzz", "rtf", "seconds"))


def test_a_continuous_codec_gets_finite_figures_and_its_latent_size(tmp_path, folder, capsys):
    result = _run(_export(tmp_path), folder, tmp_path=tmp_path)
    assert [row["path"] for row in result["files"]] == ["a.wav", "sub/b.wav"]
    assert [row["seconds"] for row in result["files"]] == [0.5, 0.75]  # at the codec's 16 kHz
    assert all(_finite(row) for row in [*result["files"], result["mean"]])
    assert result["mean"]["rtf"] > 0 and result["machine"]["threads"] == 1
    assert result["tokens"] is None
    assert -1 <= result["latents"]["lag1_autocorrelation"] <= 1
    assert result["bitrate"] == {
        "kind": "continuous", "kbps": "continuous", "latent_dim": 8, "frame_rate": 250.0,
        "floats_per_second": 2000.0, "audio_samples_per_second": 16000, "ratio_to_audio": 0.125}
    printed = capsys.readouterr().out
    assert "bitrate   continuous: latents 8 x 250 Hz = 2000 floats/s" in printed
    assert "mean (2 files)" in printed and "avx512_bf16" in printed
    assert "latents   lag-1 autocorrelation" in printed
    assert f"torch {torch.__version__}" in printed and result["codec"]["identity"][:12] in printed


@pytest.mark.parametrize("kind", sorted(BOTTLENECKS))
def test_a_discrete_codec_bitrate_is_its_tokens(tmp_path, folder, kind):
    section = {**VAE, "bottleneck": BOTTLENECKS[kind]}
    result = _run(_export(tmp_path, section=section), folder, "--segment-seconds", "0.25",
                  "--limit", "1", tmp_path=tmp_path)
    cardinality = 16 if kind == "rvq" else 5 * 3
    assert result["bitrate"]["kbps"] == pytest.approx(250 * 2 * math.log2(cardinality) / 1000)
    assert [(row["path"], row["items"]) for row in result["files"]] == [("a.wav", 2)]
    assert _finite(result["mean"])
    assert len(result["tokens"]) == 2  # one entry per codebook
    assert all(1 <= entry["perplexity"] <= cardinality and 0 <= entry["repeat_rate"] <= 1
               for entry in result["tokens"])


def test_token_statistics_count_codes_and_repeats():
    """Perplexity: the number of codes when they are used equally; repeat rate: the share of
    frames whose code is the previous one's, within each item (never across items)."""
    first = torch.tensor([[0, 0, 0, 1], [0, 1, 2, 3]])
    second = torch.tensor([[1, 1], [3, 2]])
    low, high = codec_eval["token_statistics"]([first, second], 8)
    assert low["repeat_rate"] == pytest.approx(3 / 4)  # 0->0, 0->0, 1->1 of 4 steps
    assert high["repeat_rate"] == 0.0
    assert low["perplexity"] == pytest.approx(2.0)  # codes 0 and 1, three times each
    assert high["perplexity"] == pytest.approx(math.exp(-(2 * (2 / 6) * math.log(2 / 6)
                                                          + 2 * (1 / 6) * math.log(1 / 6))))


def test_latent_statistics_standardise_each_channel_over_every_item():
    held = torch.tensor([[1.0, 1.0, 3.0, 3.0]])  # holds still, then jumps
    flipping = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    # Standardised (mean 2, std 1) held is -1, -1, 1, 1: its pairs' products 1, -1, 1; no
    # pair crosses from one item to the next.
    stats = codec_eval["latent_statistics"]([held, held])
    assert stats["lag1_autocorrelation"] == pytest.approx(1 / 3)
    assert codec_eval["latent_statistics"]([flipping])["lag1_autocorrelation"] == \
        pytest.approx(-1)
    two = torch.cat([held, 10 * flipping])  # channels weigh the same whatever their scale
    assert codec_eval["latent_statistics"]([two])["lag1_autocorrelation"] == pytest.approx(
        (1 / 3 - 1) / 2)
    assert math.isnan(codec_eval["latent_statistics"]([held[:, :1]])["lag1_autocorrelation"])


def test_a_perfect_codec_scores_as_one(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(AutoencoderPipeline, "reconstruct",
                        lambda self, audio, rate, chunk, keep_format: (audio.clone(), rate))
    mean = _run(_export(tmp_path), folder, tmp_path=tmp_path)["mean"]
    assert mean["si_snr"] > 60 and mean["mel_distance"] == 0.0
    assert mean["stft_distance"] == pytest.approx(0.0, abs=1e-3)
    assert mean["frame_buzz"] == pytest.approx(1.0)


def test_quiet_items_are_left_out_and_the_json_is_strict(tmp_path, folder, capsys):
    """Relative spectral figures of near-silence are huge (digital silence read an STFT
    distance of 65,069 beside files of 3 to 9): quiet items are counted, not averaged; the
    JSON writes what is undefined as null (a bare NaN is not JSON) into a folder it makes."""
    audio_write(folder / "silent.wav", torch.zeros(1, 8000), 16000)
    tail = torch.cat([0.3 * torch.sin(torch.arange(4000) / 5), torch.full((4000,), 1e-5)])
    audio_write(folder / "tail.wav", tail[None], 16000, subtype="FLOAT")
    out = tmp_path / "new" / "result.json"
    codec = str(_export(tmp_path))
    assert codec_eval["main"]([codec, str(folder), "--segment-seconds",
                               "0.25", "--threads", "1", "--json", str(out)]) == 0
    text = out.read_text()
    result = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    rows = {row["path"]: row for row in result["files"]}
    assert (rows["silent.wav"]["items"], rows["silent.wav"]["quiet"]) == (0, 2)
    assert rows["silent.wav"]["stft_distance"] is None
    assert (rows["tail.wav"]["items"], rows["tail.wav"]["quiet"]) == (1, 1)
    assert result["mean"]["files"] == 3 and result["mean"]["quiet"] == 3
    assert _finite(result["mean"])
    assert "3 item(s) quieter than -60 dBFS left out" in capsys.readouterr().out
    silence = tmp_path / "silence"
    silence.mkdir()
    audio_write(silence / "silent.wav", torch.zeros(1, 8000), 16000)
    assert codec_eval["main"]([codec, str(silence)]) == 2
    assert "every item is quieter than --quiet-db" in capsys.readouterr().err


def test_bad_numbers_nan_audio_and_json_paths_are_refused_before_the_work(tmp_path, folder,
                                                                          capsys):
    codec = str(_export(tmp_path))
    with pytest.raises(SystemExit):
        codec_eval["main"]([codec, str(folder), "--segment-seconds", "nan"])
    assert "'nan' is not a finite number" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert codec_eval["main"]([codec, str(folder), "--json", str(tmp_path / "file" / "x.json")]
                              ) == 2
    assert "--json" in capsys.readouterr().err
    import soundfile
    soundfile.write(folder / "nan.wav", [0.0, float("nan")] * 100, 16000, subtype="FLOAT")
    assert codec_eval["main"]([codec, str(folder)]) == 2
    assert f"{folder / 'nan.wav'}: holds NaN or infinite samples" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["no audio", "not a folder", "unreadable", "not a codec"])
def test_user_errors_are_one_message_naming_the_path(tmp_path, folder, capsys, case):
    codec, audio = _export(tmp_path), folder
    if case == "no audio":
        audio = tmp_path / "empty"
        audio.mkdir()
        (audio / "song.wav.json").write_text("{}")
        expected = f"{audio}: no audio files"
    elif case == "not a folder":
        audio = folder / "a.wav"
        expected = f"{audio}: not a folder"
    elif case == "unreadable":
        (folder / "sub" / "broken.wav").write_bytes(b"RIFF nonsense")
        expected = f"{folder / 'sub' / 'broken.wav'}: not readable as audio"
    else:
        cnn = {"channels": [4], "pools": [[2, 2]], "n_mels": 16, "num_classes": 2}
        codec = _export(tmp_path, "classifier", cnn, "cnn.safetensors")
        expected = f"{codec} is a classifier model; this needs an autoencoder model"
    assert codec_eval["main"]([str(codec), str(audio)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and expected in captured.err
    assert "Traceback" not in captured.err and not captured.out
