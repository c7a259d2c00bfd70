"""The offline embedder: shapes, units, determinism, errors, and that on the shipped music it
puts held-out music far closer to music than noise is (what makes it a meaningful FD)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from audiotools.data.audio import audio_read
from audiotools.environment import DATASETS_DIR
from audiotools.errors import CheckpointError, ConfigError
from audiotools.metrics.embeddings import DEFAULT_VGGISH_WEIGHTS, MelStatsEmbedder, get_embedder
from audiotools.metrics.frechet import frechet_distance
from audiotools.metrics.generation import noise_like, rms
from tests.signals import noise

RATE = 16000
ENVELOPE, TONALITY = slice(0, 20), slice(44, 50)


def _chord(seconds: float, rate: int = RATE) -> torch.Tensor:
    """(1, T) three decaying harmonic notes, one per second."""
    t = torch.arange(round(seconds * rate)) / rate
    pitch = torch.tensor([220.0, 277.2, 329.6])[(t.long() % 3)]
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / rate
    notes = sum(0.3 / k * torch.sin(k * phase) for k in range(1, 6))
    return (notes * torch.exp(-3 * (t % 1)))[None]


def test_one_vector_per_second_of_each_clip():
    embedder = MelStatsEmbedder()
    audio = torch.cat([_chord(3.5)[None], noise(1, 1, 56000, std=0.1)])
    embeddings = embedder.embed(audio, RATE)
    assert embeddings.shape == (2 * 3, embedder.dim) and embedder.dim == 50
    assert embeddings.dtype == torch.float64 and torch.isfinite(embeddings).all()
    assert embedder.embed(_chord(0.5)[None], RATE).shape == (1, 50)  # shorter: one window
    clips = [_chord(2.0), _chord(3.0)]
    assert embedder.embed_clips(clips, RATE).shape == (5, 50)


def test_deterministic_and_independent_of_rate_and_channels():
    embedder = MelStatsEmbedder()
    clip = _chord(2.0)
    first = embedder.embed(clip[None], RATE)
    assert torch.equal(first, MelStatsEmbedder().embed(clip[None], RATE))
    stereo_48k = torch.nn.functional.interpolate(clip[None], scale_factor=3, mode="linear",
                                                 align_corners=False).repeat(1, 2, 1)
    converted = embedder.embed(stereo_48k, 48000)
    assert converted.shape == first.shape
    assert (converted[:, ENVELOPE] - first[:, ENVELOPE]).abs().max() < 2.0  # dB-sized units


def test_coordinates_are_in_decibels():
    """Doubling the amplitude raises every band by 6.02 dB: the orthonormal DCT's first
    coefficient by 6.02 * sqrt(64); the shape, dynamics, flux and flatness do not move."""
    embedder = MelStatsEmbedder()
    quiet = noise(1, 1, 3 * RATE, std=0.05, seed=1)
    low, high = embedder.embed(quiet, RATE), embedder.embed(2 * quiet, RATE)
    shift = high - low
    assert shift[:, 0] == pytest.approx(torch.full((3,), 20 * math.log10(2) * 8,
                                                   dtype=torch.float64), abs=1e-2)
    assert shift[:, 1:].abs().max() < 1e-2


def test_flatness_tells_noise_from_harmonic_sound():
    """White noise's bins have exponentially distributed power: flatness -10 log10(e) gamma
    = -2.51 dB; a harmonic sound's octaves with partials in them (250 Hz - 2 kHz here) are
    far less flat."""
    embedder = MelStatsEmbedder()
    white = embedder.embed(noise(1, 1, 4 * RATE, std=0.1, seed=2), RATE)[:, TONALITY]
    tones = embedder.embed(_chord(4.0)[None], RATE)[:, TONALITY]
    assert white[:, 2:].mean(dim=0) == pytest.approx(torch.full((4,), -2.507,
                                                                dtype=torch.float64), abs=0.3)
    assert (tones[:, 1:4] < -10).all()


@pytest.mark.parametrize("audio, message", [
    (torch.zeros(1, RATE), r"\(batch, channels, time\)"),
    (torch.zeros(1, 1, 1000), "at least 0.1 s"),
])
def test_clear_errors(audio, message):
    with pytest.raises(ValueError, match=message):
        MelStatsEmbedder().embed(audio, RATE)


def test_embedders_by_name(tmp_path, monkeypatch):
    assert isinstance(get_embedder("mel-stats"), MelStatsEmbedder)
    with pytest.raises(ConfigError, match=r"'nope' is not known; use 'mel-stats'"):
        get_embedder("nope")
    monkeypatch.setenv("AUDIOTOOLS_REFERENCE_DIR", str(tmp_path))
    expected = tmp_path / DEFAULT_VGGISH_WEIGHTS.removeprefix("//reference/")
    with pytest.raises(CheckpointError, match=f"not found \\({expected}\\)"):
        get_embedder("vggish")
    with pytest.raises(CheckpointError, match=str(tmp_path / "mine.pth")):
        get_embedder("vggish://reference/mine.pth")


def _music(split: str) -> list[torch.Tensor]:
    root = DATASETS_DIR / "music_small"
    rows = [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]
    return [audio_read(Path(root, row["path"]))[0] for row in rows]


def test_on_real_music_held_out_music_is_much_closer_than_noise():
    """Reference: the 32 training pieces; held out: the 8 valid + evaluate pieces (other
    composers and instruments). Noise has the held-out clips' shapes and the music's RMS."""
    embedder = MelStatsEmbedder()
    music = _music("train")
    heldout = _music("valid") + _music("evaluate")
    reference = embedder.embed_clips(music, RATE)
    assert reference.shape[0] > 500  # 16 one-second windows per piece

    def distance(clips: list[torch.Tensor]) -> float:
        return frechet_distance(embedder.embed_clips(clips, RATE), reference)

    level = rms(music)
    real = distance(heldout)
    white = distance(noise_like(heldout, level, "white", seed=0))
    pink = distance(noise_like(heldout, level, "pink", seed=1))
    hiss = noise_like(heldout, 1.0, "white", seed=2)
    noisy = distance([clip + 0.1 * rms([clip]) * n for clip, n in zip(heldout, hiss,
                                                                      strict=True)])
    assert 3 * real < pink < white
    assert real < noisy < white  # 20 dB SNR hiss: graded, between the two
