"""Reconstruction metrics between an estimate and a reference, both (batch, channels, time).

Every metric returns a (batch,) float32 tensor, one value per item, so a caller can average
over a whole split (summing across batches and DDP ranks) without weighting batches wrongly.
They run in float32 with autocast off.

- `si_snr`: scale-invariant SNR in dB (higher is better). Each channel is made zero-mean
  and the estimate is projected on the reference per channel; the item's value is
  10 log10(sum over channels |target|^2 / sum over channels |error|^2), which is the usual
  SI-SNR for mono.
- `mel_distance`: mean |log10 mel(estimate) - log10 mel(reference)| (lower is better) over
  three resolutions, (n_fft, hop, mel bands) = (2048, 512, 128), (1024, 256, 64) and
  (512, 128, 32): Hann window of n_fft, centred frames, magnitude (not power) spectra,
  Slaney mel bands from 0 Hz to Nyquist, values floored at 1e-5 before the log; averaged
  over bands, frames, channels and resolutions.
- `stft_distance`: the multi-resolution STFT loss (spectral convergence + mean |log
  magnitude difference|) at FFT sizes 2048, 1024, 512, 256, 128 with hop = size / 4 and a
  Hann window of the FFT size, averaged over resolutions and channels (lower is better).
- `frame_rate_comb`: of one signal, not a pair: how much a codec's frame rate shows as a buzz.
  The power spectrum (Hann window of 16 hops, hop / 2 apart, averaged over frames and
  channels, so a bin is frame_rate / 16 wide) at the multiples of half the frame rate between
  a fifth of the sample rate and 0.45 of it, over the power halfway between them. Noise and
  music give about 1; frames that repeat every hop, or every other hop with their sign
  flipped, overlap-add into a comb of lines there: several times more. A spectral codec whose
  decoder keeps the phase of its noise floor from frame to frame makes one.
- `frame_buzz`: the estimate's `frame_rate_comb` over the reference's: the buzz a codec adds
  (about 1: none), since music's own partials can fall on those lines.
"""
from __future__ import annotations

import torch

from ..losses.spectral import MultiResolutionSTFTLoss
from ..losses.stft import check_pair, full_precision, make_window, mel_filterbank, stft_magnitude

MEL_RESOLUTIONS = ((2048, 512, 128), (1024, 256, 64), (512, 128, 32))
MEL_FLOOR = 1e-5
STFT_FFT_SIZES = (2048, 1024, 512, 256, 128)


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(batch,) scale-invariant SNR in dB; `eps` keeps silent references and perfect
    estimates finite."""
    check_pair("si_snr", estimate, reference)
    with full_precision(estimate.device):
        estimate = estimate.float() - estimate.float().mean(dim=-1, keepdim=True)
        reference = reference.float() - reference.float().mean(dim=-1, keepdim=True)
        scale = ((estimate * reference).sum(dim=-1, keepdim=True)
                 / (reference.pow(2).sum(dim=-1, keepdim=True) + eps))
        target = scale * reference
        error = estimate - target
        ratio = (target.pow(2).sum(dim=(1, 2)) + eps) / (error.pow(2).sum(dim=(1, 2)) + eps)
        return 10 * torch.log10(ratio)


def mel_distance(estimate: torch.Tensor, reference: torch.Tensor,
                 sample_rate: int) -> torch.Tensor:
    """(batch,) mean absolute log10-mel difference over `MEL_RESOLUTIONS`."""
    check_pair("mel_distance", estimate, reference)
    batch, channels, length = estimate.shape
    with full_precision(estimate.device):
        estimate = estimate.float().reshape(batch * channels, length)
        reference = reference.float().reshape(batch * channels, length)
        total = estimate.new_zeros(batch * channels)
        for n_fft, hop, n_mels in MEL_RESOLUTIONS:
            window = make_window("hann_window", n_fft).to(estimate.device)
            bank = mel_filterbank(n_fft, n_mels, sample_rate).to(estimate.device)
            logs = [torch.log10(torch.clamp(bank @ stft_magnitude(audio, n_fft, hop, window),
                                            min=MEL_FLOOR))
                    for audio in (estimate, reference)]
            total = total + (logs[0] - logs[1]).abs().mean(dim=(-2, -1))
    return (total / len(MEL_RESOLUTIONS)).view(batch, channels).mean(dim=1)


def stft_distance(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(batch,) multi-resolution STFT distance at `STFT_FFT_SIZES`."""
    check_pair("stft_distance", estimate, reference)
    loss = MultiResolutionSTFTLoss(fft_sizes=STFT_FFT_SIZES,
                                   hop_sizes=[size // 4 for size in STFT_FFT_SIZES],
                                   win_lengths=STFT_FFT_SIZES).to(estimate.device)
    return loss.per_item(estimate, reference)


def frame_rate_comb(audio: torch.Tensor, sample_rate: int, hop_length: int) -> torch.Tensor:
    """(batch,) power at the multiples of half the frame rate sample_rate / hop_length over
    the power halfway between them, in the upper band (module docstring)."""
    batch, channels, length = audio.shape
    n_fft = 16 * hop_length
    with full_precision(audio.device):
        signal = audio.float().reshape(batch * channels, length)
        window = make_window("hann_window", n_fft).to(audio.device)
        power = stft_magnitude(signal, n_fft, hop_length // 2, window).pow(2).mean(dim=-1)
        power = power.view(batch, channels, -1).mean(dim=1)
        bins = torch.arange(power.shape[-1], device=audio.device)
        frequency = bins * sample_rate / n_fft
        band = (frequency >= sample_rate / 5) & (frequency <= 0.45 * sample_rate)
        lines, between = band & (bins % 8 == 0), band & (bins % 8 == 4)
        return power[:, lines].mean(dim=-1) / power[:, between].mean(dim=-1).clamp(min=1e-20)


def frame_buzz(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int,
               hop_length: int) -> torch.Tensor:
    """(batch,) the frame-rate comb the estimate has beyond the reference's own."""
    check_pair("frame_buzz", estimate, reference)
    return (frame_rate_comb(estimate, sample_rate, hop_length)
            / frame_rate_comb(reference, sample_rate, hop_length))
