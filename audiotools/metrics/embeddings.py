"""Audio embedders for distribution metrics (Fréchet distance), chosen by a name string.

An embedder turns clips at any rate and channel count into (N, D) vectors; N counts
windows, not clips (a 16 s clip gives 16 one-second vectors), so a few long clips still give
enough vectors to estimate a covariance. The base class mixes to mono and resamples, so each
embedder only sees what it was designed for.

Names (`get_embedder`):
- `mel-stats`: `MelStatsEmbedder`, no weights, works on any machine.
- `vggish` or `vggish:PATH`: the pretrained VGGish (`audiotools.metrics.vggish`), weights
  read from PATH (default `DEFAULT_VGGISH_WEIGHTS`, under `//reference/`); nothing is ever
  downloaded.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
import torchaudio

from ..data.audio import resample
from ..errors import ConfigError
from ..losses.stft import full_precision, make_window, stft_magnitude

Clips = torch.Tensor | Sequence[torch.Tensor]
DEFAULT_VGGISH_WEIGHTS = "//reference/vggish/vggish-10086976.pth"


class AudioEmbedder(ABC):
    """(B, C, T) audio at any rate -> (N, D) float64 embeddings on the CPU."""

    name: str
    sample_rate: int
    dim: int

    @abstractmethod
    def _embed(self, mono: torch.Tensor) -> torch.Tensor:
        """(B, T) float32 mono at `self.sample_rate` -> (N, D)."""

    def embed(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Embeddings of a batch of equal-length clips, mixed to mono and resampled first."""
        if audio.dim() != 3 or audio.shape[-1] == 0:
            raise ValueError(f"{self.name} embeds (batch, channels, time) audio, got shape "
                             f"{tuple(audio.shape)}.")
        mono = audio.detach().float().cpu().mean(dim=1)
        mono = resample(mono, sample_rate, self.sample_rate)
        with torch.no_grad(), full_precision(mono.device):
            return self._embed(mono).double().cpu()

    def embed_clips(self, clips: Clips, sample_rate: int) -> torch.Tensor:
        """Embeddings of clips of any lengths: a (B, C, T) batch or a list of (C, T) clips."""
        if isinstance(clips, torch.Tensor) and clips.dim() != 3:
            raise ValueError(f"Expected a (batch, channels, time) tensor or a list of "
                             f"(channels, time) clips, got shape {tuple(clips.shape)}.")
        if len(clips) == 0:
            raise ValueError(f"{self.name}: no clips to embed.")
        return torch.cat([self.embed(clip[None], sample_rate) for clip in clips])


class MelStatsEmbedder(AudioEmbedder):
    """Per one-second window, what a mel spectrogram says about timbre, dynamics and noise.

    One STFT (1024-sample Hann, 64 ms, 10 ms hop, at 16 kHz) scaled so a full-scale sine is
    0 dB, floored at -80 dB (the usual range of a spectrogram: quieter detail is inaudible
    beside the music). Its power in 64 mel bands (HTK scale, 0-8 kHz, triangles of peak 1),
    in dB, gives per window of `window_seconds`:
    - envelope: the bands' mean level (DCT, first 20 coefficients): timbre, brightness,
      loudness;
    - dynamics: the bands' standard deviation over frames (DCT, 12): how much notes and
      loudness move within the window;
    - flux: the bands' mean absolute change from frame to frame (DCT, 12): onsets, tremolo,
      the frame-to-frame flicker of noise;
    - tonality: the spectral flatness (geometric / arithmetic mean of power, dB) of the STFT
      bins in 6 octaves from 125 Hz to 8 kHz, averaged over frames: harmonic partials
      (low flatness) or noise (about -2.5 dB for white noise; an empty octave, all at the
      floor, is flat: 0 dB).
    The DCT is orthonormal, so the squared distance of two envelopes is the sum over bands of
    their squared dB differences (smoothed across bands by the truncation): every coordinate
    is in dB. Deterministic: no weights, no randomness.
    """

    name = "mel-stats"
    sample_rate = 16000
    n_fft = 1024
    hop = 160
    n_mels = 64
    coefficients = {"envelope": 20, "dynamics": 12, "flux": 12}
    octave_edges_hz = (125, 250, 500, 1000, 2000, 4000, 8000)
    floor_db = -80.0
    min_seconds = 0.1

    def __init__(self, window_seconds: float = 1.0) -> None:
        self.window_frames = round(window_seconds * self.sample_rate / self.hop)
        if self.window_frames < 2:
            raise ValueError(f"window_seconds={window_seconds}: a window needs at least two "
                             f"{self.hop / self.sample_rate * 1000:g} ms frames.")
        self.window = make_window("hann_window", self.n_fft)
        self.bank = torchaudio.functional.melscale_fbanks(
            self.n_fft // 2 + 1, 0.0, self.sample_rate / 2, self.n_mels, self.sample_rate,
            norm=None, mel_scale="htk").T.contiguous()
        self.dcts = {part: torchaudio.functional.create_dct(count, self.n_mels, "ortho")
                     for part, count in self.coefficients.items()}
        bin_hz = self.sample_rate / self.n_fft
        self.octaves = [(round(low / bin_hz), round(high / bin_hz) + 1) for low, high in
                        zip(self.octave_edges_hz[:-1], self.octave_edges_hz[1:], strict=True)]
        self.dim = sum(self.coefficients.values()) + len(self.octaves)

    def _db(self, power: torch.Tensor) -> torch.Tensor:
        return 10 * torch.log10(power.clamp_min(10 ** (self.floor_db / 10)))

    def _embed(self, mono: torch.Tensor) -> torch.Tensor:
        if mono.shape[-1] < self.min_seconds * self.sample_rate:
            raise ValueError(f"{self.name} needs clips of at least {self.min_seconds} s; got "
                             f"{mono.shape[-1] / self.sample_rate:.3f} s.")
        scale = self.window.sum() / 2  # a full-scale sine's peak bin -> magnitude 1
        power = (stft_magnitude(mono, self.n_fft, self.hop, self.window) / scale) ** 2
        frames = power.shape[-1]
        size = min(self.window_frames, frames)
        count = frames // size
        # (B, bins, windows, frames per window): non-overlapping windows, the tail dropped.
        power = power[..., :count * size].unflatten(-1, (count, size))
        mel = self._db(torch.einsum("mf,bfwt->bmwt", self.bank, power))
        parts = {"envelope": mel.mean(dim=-1), "dynamics": mel.std(dim=-1),
                 "flux": mel.diff(dim=-1).abs().mean(dim=-1)}
        features = [torch.einsum("mc,bmw->bwc", self.dcts[part], values)
                    for part, values in parts.items()]
        floored = power.clamp_min(10 ** (self.floor_db / 10))
        flatness = [self._db(floored[:, low:high].log().mean(dim=1).exp()
                             / floored[:, low:high].mean(dim=1)).mean(dim=-1)
                    for low, high in self.octaves]
        features.append(torch.stack(flatness, dim=-1))
        return torch.cat(features, dim=-1).flatten(0, 1)


def get_embedder(spec: str, device: str | torch.device = "cpu") -> AudioEmbedder:
    """The embedder a config or command line names: `mel-stats`, `vggish` or `vggish:PATH`."""
    name, _, argument = spec.partition(":")
    if name == "mel-stats" and not argument:
        return MelStatsEmbedder()
    if name == "vggish":
        from .vggish import VGGishEmbedder, load_vggish
        return VGGishEmbedder(load_vggish(argument or DEFAULT_VGGISH_WEIGHTS, device=device))
    raise ConfigError(f"embedder={spec!r} is not known; use 'mel-stats' (no weights) or "
                      f"'vggish[:PATH]' (default PATH {DEFAULT_VGGISH_WEIGHTS}).")
