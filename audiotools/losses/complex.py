"""Compressed complex spectrum loss: mean squared distance between power-law compressed complex
STFTs, |X|^p e^{i angle X} with p = 0.3, over one or more resolutions.

Why: a waveform loss weighs bins by their energy, so on a few thousand CPU updates a model
matches the loudest partials and leaves the rest; a log-magnitude loss ignores the phase,
which SI-SNR measures. The compressed complex distance weighs quiet and loud bins alike and
reaches the phase, which makes a spectral codec's waveform follow its input sooner
(docs/solvers/autoencoder.md has the measurements).
"""
from __future__ import annotations

import torch
from torch import nn

from .stft import check_pair, check_resolutions, full_precision, stft


class CompressedSpectrumLoss(nn.Module):
    def __init__(self, fft_sizes: list[int], hop_sizes: list[int], power: float = 0.3):
        super().__init__()
        check_resolutions(fft_sizes, hop_sizes, fft_sizes, "losses.complex",
                          names=("fft_sizes", "hop_sizes", "fft_sizes"))
        if not 0 < power <= 1:
            raise ValueError(f"losses.complex.power={power} must lie in (0, 1]")
        self.resolutions = list(zip(fft_sizes, hop_sizes, strict=True))
        self.power = power
        for fft_size in sorted(set(fft_sizes)):
            self.register_buffer(f"window_{fft_size}", torch.hann_window(fft_size),
                                 persistent=False)

    def _compressed(self, audio: torch.Tensor, fft_size: int, hop: int) -> torch.Tensor:
        window = getattr(self, f"window_{fft_size}")
        spectrum = stft(audio, fft_size, hop, window)
        return spectrum * (spectrum.abs() + 1e-7).pow(self.power - 1)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_pair("CompressedSpectrumLoss", estimate, reference)
        with full_precision(estimate.device):
            estimate = estimate.float().flatten(0, 1)
            reference = reference.float().flatten(0, 1)
            total = estimate.new_zeros(())
            for fft_size, hop in self.resolutions:
                difference = (self._compressed(estimate, fft_size, hop)
                              - self._compressed(reference, fft_size, hop))
                total = total + difference.abs().square().mean()
        return total / len(self.resolutions)
