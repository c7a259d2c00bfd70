from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotools.data.audio import (
    AudioFileError,
    StreamResampler,
    audio_blocks,
    audio_info,
    audio_read,
    audio_write,
    audio_writer,
    convert_channels,
    resample,
)
from audiotools.errors import ConfigError

from .conftest import tone


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
def test_wav_subtypes_read_as_float(write_tone, subtype):
    path = write_tone(f"a_{subtype}.wav", 0.5, 8000, subtype=subtype)
    wav, rate = audio_read(path)
    expected = torch.from_numpy(tone(0.5, 8000).T)
    tolerance = {"PCM_U8": 1e-2, "PCM_16": 1e-4, "PCM_24": 1e-6, "FLOAT": 0}[subtype]
    assert rate == 8000 and wav.dtype == torch.float32 and wav.shape == (1, 4000)
    assert torch.allclose(wav, expected, atol=tolerance + 1e-7)


def test_seek_reads_exactly_the_frames_asked_for(tmp_path):
    ramp = (np.arange(48000, dtype=np.float32) / 48000)[:, None]
    sf.write(tmp_path / "ramp.wav", ramp, 16000, subtype="FLOAT")
    wav, rate = audio_read(tmp_path / "ramp.wav", seek=1.0, duration=0.5)
    assert rate == 16000
    assert torch.equal(wav[0], torch.from_numpy(ramp[16000:24000, 0]))
    tail, _ = audio_read(tmp_path / "ramp.wav", seek=2.75, duration=1.0)
    assert tail.shape == (1, 4000)  # the file ends: fewer frames, no padding here


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000])
def test_any_rate_converts_to_target(write_tone, rate):
    path = write_tone(f"r{rate}.wav", 1.0, rate, channels=2, freq=300)
    wav, out_rate = audio_read(path, seek=0.25, duration=0.5, sample_rate=16000, channels=1)
    assert out_rate == 16000 and wav.shape == (1, 8000)
    # A 300 Hz tone keeps its frequency: the spectrum peaks at bin 300 / (16000 / 8000).
    spectrum = torch.fft.rfft(wav[0]).abs()
    assert int(spectrum.argmax()) == 150
    assert wav.abs().max() == pytest.approx(0.375, abs=0.01)  # mean of 0.5 and 0.25


def test_channel_conversions():
    six = torch.stack([torch.full((10,), float(c)) for c in range(6)])
    assert torch.equal(convert_channels(six, 1), torch.full((1, 10), 2.5))
    assert torch.equal(convert_channels(six, 2), six[:2])
    mono = torch.ones(1, 10)
    assert convert_channels(mono, 6).shape == (6, 10)
    with pytest.raises(ConfigError, match="cannot make 6 channels from a 2-channel"):
        convert_channels(torch.ones(2, 10), 6)


def test_six_channel_file_reads_as_stereo(write_tone):
    path = write_tone("surround.wav", 0.25, 48000, channels=6)
    assert audio_info(path).channels == 6
    wav, _ = audio_read(path, channels=2)
    assert wav.shape == (2, 12000)
    assert wav[0].abs().max() == pytest.approx(0.5, abs=1e-3)
    assert wav[1].abs().max() == pytest.approx(0.25, abs=1e-3)


@pytest.mark.parametrize("suffix,tolerance", [(".wav", 1e-4), (".flac", 1e-4), (".ogg", 0.05),
                                              (".mp3", 0.1)])
def test_write_and_read_back_each_format(tmp_path, suffix, tolerance):
    audio = torch.from_numpy(tone(1.0, 44100, channels=2).T)
    path = audio_write(tmp_path / f"x{suffix}", audio, 44100)
    info = audio_info(path)
    assert (info.sample_rate, info.channels) == (44100, 2)
    assert info.duration == pytest.approx(1.0, abs=0.06)
    wav, _ = audio_read(path, seek=0.5, duration=0.1)
    assert wav.shape == (2, 4410)
    assert wav.abs().max() == pytest.approx(0.5, abs=tolerance)
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_clips_integer_formats_and_refuses_unknown_extension(tmp_path):
    path = audio_write(tmp_path / "loud.wav", torch.full((1, 100), 3.0), 8000)
    assert audio_read(path)[0].max() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ConfigError, match=r"\.aac"):
        audio_write(tmp_path / "x.aac", torch.zeros(1, 10), 8000)
    with pytest.raises(AudioFileError, match=(  # the file asked for, not the temporary one
            rf"^{tmp_path}/x.mp3: cannot write it \(Error opening '{tmp_path}/x.mp3': .*"
            r"sample rates of 8000")):
        audio_write(tmp_path / "x.mp3", torch.zeros(1, 1000), 12345)
    assert not list(tmp_path.glob("*x.mp3*"))
    # What another process wrote there meanwhile is refused (without --force), not replaced.
    theirs = audio_write(tmp_path / "theirs.wav", torch.zeros(1, 10), 8000)
    before = theirs.read_bytes()
    with pytest.raises(AudioFileError, match=r"theirs.wav exists \(written while this ran\)"):
        audio_write(theirs, torch.ones(1, 10) * 0.5, 8000, exclusive=True)
    assert theirs.read_bytes() == before and len(list(tmp_path.iterdir())) == 2
    assert audio_read(audio_write(theirs, torch.ones(1, 10) * 0.5, 8000))[0].max() > 0.4


def test_unreadable_file_names_the_path(tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioFileError, match="noise.wav"):
        audio_info(bad)
    with pytest.raises(AudioFileError, match="noise.wav"):
        audio_read(bad)


def test_mp3_seek_gives_the_samples_of_a_full_decode(tmp_path):
    path = audio_write(tmp_path / "x.mp3", torch.from_numpy(tone(2.0, 44100).T), 44100)
    full, _ = audio_read(path)
    for seek in (0.1, 0.5, 1.3):
        part, _ = audio_read(path, seek=seek, duration=0.1)
        start = round(seek * 44100)
        assert torch.equal(part, full[:, start:start + 4410])


@pytest.mark.parametrize(("orig", "new"), [(44100, 16000), (16000, 44100), (48000, 44100),
                                           (8000, 32000), (16000, 16000)])
@pytest.mark.parametrize("block", [1, 13, 4410, 10**6])
def test_blocks_resample_as_the_whole_signal_does(orig, new, block):
    seconds = 0.2 if block == 1 else 3
    signal = torch.randn(2, int(seconds * orig) + 17, generator=torch.Generator().manual_seed(0))
    whole = resample(signal, orig, new)
    stream = StreamResampler(orig, new)
    pieces = [stream.push(signal[:, i:i + block]) for i in range(0, signal.shape[-1], block)]
    last = stream.finish()
    joined = torch.cat([*pieces, last], dim=-1)
    assert joined.shape == whole.shape
    torch.testing.assert_close(joined, whole, atol=1e-5, rtol=0)
    # Output as its input came: what is left for the end is at most a kernel's reach (one
    # group of outputs per `orig` inputs, reading 2 * width more), and it kept no more input.
    divisor = math.gcd(orig, new)
    group_in, group_out = orig // divisor, new // divisor
    if orig != new:
        reach = math.ceil((2 * stream._width + group_in) / group_in) + 1
        assert last.shape[-1] <= reach * group_out
        assert stream._kept.shape[-1] <= 2 * stream._width + 2 * group_in


def test_blocks_read_and_write_a_file_piece_by_piece(tmp_path):
    signal = (torch.rand(2, 10_007, generator=torch.Generator().manual_seed(0)) - 0.5)
    source = audio_write(tmp_path / "in.wav", signal, 16000, subtype="FLOAT")
    blocks = list(audio_blocks(source, 4000))
    assert [block.shape for block in blocks] == [(2, 4000), (2, 4000), (2, 2007)]
    with audio_writer(tmp_path / "out.flac", 16000, 2) as writer:
        assert not (tmp_path / "out.flac").exists()  # a temporary name until the end
        for block in blocks:
            writer.write(block * 3)  # clipped, as audio_write clips integer formats
    back, rate = audio_read(tmp_path / "out.flac")
    assert rate == 16000 and back.shape == signal.shape
    torch.testing.assert_close(back, (signal * 3).clamp(-1, 1), atol=1 / 32768, rtol=0)
    with pytest.raises(RuntimeError, match="stop"), audio_writer(tmp_path / "x.wav", 16000,
                                                                  1) as writer:
        writer.write(torch.zeros(1, 10))
        raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.flac"]
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AudioFileError, match="notes.wav: not readable as audio"):
        list(audio_blocks(tmp_path / "notes.wav", 10))
