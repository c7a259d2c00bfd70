"""The generation report: the model between held-out real audio and noise, for FD and
conditional accuracy; noise references at the reference's loudness; determinism; the table."""
from __future__ import annotations

import math

import pytest
import torch

from audiotools.metrics.embeddings import MelStatsEmbedder
from audiotools.metrics.generation import (
    format_report,
    generation_report,
    noise_like,
    report_metrics,
    rms,
)
from tests.metrics.test_conditional import write_classifier

RATE = 16000
ROWS = ["model", "held-out real", "white noise", "pink noise"]


def _notes(count: int, seed: int, hiss: float = 0.0) -> tuple[list[torch.Tensor], list[str]]:
    """`count` 2 s harmonic notes, low (100-300 Hz) or high (1.5-3 kHz) in turn, with white
    hiss at `hiss` times their RMS; and their labels."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(2 * RATE) / RATE
    clips, labels = [], []
    for index in range(count):
        label = ("low", "high")[index % 2]
        low, high = (100.0, 300.0) if label == "low" else (1500.0, 3000.0)
        pitch = low + (high - low) * float(torch.rand((), generator=generator))
        clip = sum(0.2 / k * torch.sin(2 * math.pi * k * pitch * t)
                   for k in range(1, 4) if k * pitch < RATE / 2)
        clip = (clip * torch.exp(-2 * (t % 0.5)))[None]
        clip = clip + hiss * rms([clip]) * torch.randn(clip.shape, generator=generator)
        clips.append(clip)
        labels.append(label)
    return clips, labels


class CentroidClassifier:
    """A stand-in pipeline: "low" when the spectral centroid is under 1 kHz."""

    class_names = ["low", "high"]

    def classify(self, audio: torch.Tensor, sample_rate: int) -> list[tuple[str, float]]:
        power = torch.fft.rfft(audio.mean(dim=0)).abs() ** 2
        hz = torch.fft.rfftfreq(audio.shape[-1], 1 / sample_rate)
        low = float((power * hz).sum() / power.sum()) < 1000
        return [("low", 1.0), ("high", 0.0)] if low else [("high", 1.0), ("low", 0.0)]


def test_noise_has_the_shapes_asked_for_at_the_level_asked_for():
    clips = [torch.zeros(2, 3000), torch.zeros(1, 5000)]
    white = noise_like(clips, 0.25, "white", seed=0)
    pink = noise_like(clips, 0.25, "pink", seed=0)
    assert [n.shape for n in white] == [n.shape for n in pink] == [(2, 3000), (1, 5000)]
    assert [rms([n]) for n in white + pink] == pytest.approx([0.25] * 4, rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(white, noise_like(clips, 0.25, "white", 0),
                                                 strict=True))
    with pytest.raises(ValueError, match="noise kind 'brown'"):
        noise_like(clips, 0.25, "brown", seed=0)


def test_pink_noise_has_equal_power_per_octave():
    pink = noise_like([torch.zeros(1, 2 ** 18)], 0.1, "pink", seed=3)[0][0]
    white = noise_like([torch.zeros(1, 2 ** 18)], 0.1, "white", seed=3)[0][0]
    hz = torch.fft.rfftfreq(2 ** 18, 1 / RATE)

    def octaves(audio: torch.Tensor) -> list[float]:
        power = torch.fft.rfft(audio).abs() ** 2
        return [float(power[(hz >= f) & (hz < 2 * f)].sum()) for f in (250, 500, 1000, 2000)]

    pink_octaves, white_octaves = octaves(pink), octaves(white)
    assert max(pink_octaves) / min(pink_octaves) < 1.1
    assert white_octaves[-1] / white_octaves[0] == pytest.approx(8, rel=0.1)


def test_report_places_the_model_between_real_audio_and_noise():
    reference, _ = _notes(16, seed=0)
    heldout, heldout_labels = _notes(6, seed=1)
    generated, labels = _notes(6, seed=2, hiss=0.1)
    report = generation_report(generated, reference, heldout, "mel-stats", RATE,
                               classifier=CentroidClassifier(), labels=labels,
                               heldout_labels=heldout_labels, seed=7)
    rows = report["rows"]
    assert list(rows) == ROWS
    assert report["embedder"] == "mel-stats" and report["seed"] == 7
    assert report["reference"] == {"clips": 16, "embeddings": 32}
    fd = {name: row["fd"] for name, row in rows.items()}
    assert fd["held-out real"] < fd["model"] < min(fd["white noise"], fd["pink noise"])
    assert [row["embeddings"] for row in rows.values()] == [12, 12, 12, 12]
    assert rows["model"]["accuracy"] == rows["held-out real"]["accuracy"] == 1.0
    assert rows["white noise"]["accuracy"] == 0.5  # always "high": chance on these labels
    assert rows["model"]["per_label"] == {"high": (3, 3), "low": (3, 3)}
    again = generation_report(generated, reference, heldout, MelStatsEmbedder(), RATE,
                              classifier=CentroidClassifier(), labels=labels,
                              heldout_labels=heldout_labels, seed=7)
    assert again == report
    other_seed = generation_report(generated, reference, heldout, "mel-stats", RATE, seed=8)
    assert other_seed["rows"]["white noise"]["fd"] != fd["white noise"]
    assert other_seed["rows"]["model"]["fd"] == fd["model"]
    assert "accuracy" not in other_seed["rows"]["model"]


def test_report_table_and_a_classifier_export_without_heldout_labels(tmp_path):
    reference, _ = _notes(4, seed=0)
    heldout, _ = _notes(2, seed=1)
    generated = torch.stack(_notes(2, seed=2)[0])  # a (B, C, T) batch works as well
    classifier = write_classifier(tmp_path / "cnn.safetensors", always="piano")
    report = generation_report(generated, reference, heldout, "mel-stats", RATE,
                               classifier=classifier, labels=["piano", "choir"])
    assert report["rows"]["model"]["accuracy"] == 0.5
    assert report["rows"]["held-out real"]["accuracy"] is None
    table = format_report(report).splitlines()
    assert table[0].startswith("FD to the reference (4 clips, 8 embeddings) with mel-stats")
    assert table[1].split() == ["set", "clips", "embeddings", "FD", "accuracy"]
    assert [line[:14].strip() for line in table[2:]] == ROWS
    model = table[2].split()
    assert model[1:] == ["2", "4", f"{report['rows']['model']['fd']:.2f}", "0.500"]
    assert table[3].split()[-1] == "-"
    with pytest.raises(ValueError, match="needs the labels the generated clips"):
        generation_report(generated, reference, heldout, "mel-stats", RATE,
                          classifier=classifier)


def test_a_codec_row_scores_the_heldout_clips_after_the_codec():
    """A codec that keeps only the band under 1 kHz, over a faint hum: its reconstructions of
    the high notes sound low, so the row shows what no model over that codec could beat."""
    reference, _ = _notes(8, seed=0)
    heldout, heldout_labels = _notes(6, seed=1)
    generated, labels = _notes(6, seed=2)

    def lowpass(clip: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(clip)
        spectrum[..., torch.fft.rfftfreq(clip.shape[-1], 1 / RATE) > 1000] = 0
        hum = 1e-3 * torch.sin(2 * math.pi * 50 * torch.arange(clip.shape[-1]) / RATE)
        return torch.fft.irfft(spectrum, n=clip.shape[-1]) + hum

    via_codec = [lowpass(clip) for clip in heldout]
    report = generation_report(generated, reference, heldout, "mel-stats", RATE,
                               classifier=CentroidClassifier(), labels=labels,
                               heldout_labels=heldout_labels, via_codec=via_codec)
    rows = report["rows"]
    assert list(rows) == ["model", "held-out real", "via codec", "white noise", "pink noise"]
    assert rows["held-out real"]["accuracy"] == 1.0
    assert rows["via codec"]["accuracy"] == 0.5  # every clip now sounds "low"
    assert rows["via codec"]["per_label"] == {"high": (0, 3), "low": (3, 3)}
    assert rows["held-out real"]["fd"] < rows["via codec"]["fd"]
    metrics = report_metrics(report)
    assert metrics["accuracy_via_codec"] == 0.5
    assert metrics["fd_via_codec"] == rows["via codec"]["fd"]
    assert format_report(report).splitlines()[4].startswith("via codec")
    with pytest.raises(ValueError, match="via_codec holds 5 clips, the held-out set 6"):
        generation_report(generated, reference, heldout, "mel-stats", RATE,
                          via_codec=via_codec[:5])
