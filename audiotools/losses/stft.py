"""STFT building blocks shared by the spectral losses, the audio metrics and the spectrogram
pictures, so that all of them see the same spectrum.

Everything here runs in float32 with autocast switched off: a bf16 STFT loses the low-level
bins a log-magnitude loss is made to care about, and CPU `torch.stft` has no bf16 kernel.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
import torchaudio

from ..errors import ConfigError

# Names as auraloss and stable-audio-tools configs spell them (torch window functions).
WINDOWS = ("hann_window", "hamming_window", "blackman_window", "bartlett_window",
           "kaiser_window")


def make_window(name: str, length: int) -> torch.Tensor:
    """A periodic window of `length` samples, by its torch function name."""
    if name not in WINDOWS:
        raise ConfigError(f"window={name!r} is not a known window; use one of {list(WINDOWS)}.")
    return getattr(torch, name)(length)


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Autocast off inside the block (any device type), so float32 inputs stay float32."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def check_resolutions(fft_sizes: list[int], hop_sizes: list[int], win_lengths: list[int],
                      owner: str,
                      names: tuple[str, str, str] = ("fft_sizes", "hop_sizes", "win_lengths"),
                      ) -> None:
    """One entry per resolution in each list (named `names` in messages), positive sizes,
    windows no longer than the FFT."""
    fft_name, hop_name, win_name = names
    if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) or not fft_sizes:
        raise ConfigError(f"{owner}: {fft_name}, {hop_name} and {win_name} need one entry per "
                          f"resolution (got {len(fft_sizes)}, {len(hop_sizes)}, "
                          f"{len(win_lengths)}).")
    for fft_size, hop, win in zip(fft_sizes, hop_sizes, win_lengths, strict=True):
        if min(fft_size, hop, win) < 1 or win > fft_size:
            raise ConfigError(f"{owner}: resolution ({fft_name[:-1]}={fft_size}, "
                              f"{hop_name[:-1]}={hop}, {win_name[:-1]}={win}) is invalid; all "
                              f"must be >= 1 and the window no longer than the FFT.")


def check_pair(name: str, estimate: torch.Tensor, reference: torch.Tensor) -> None:
    """Estimate and reference must be (batch, channels, time) of one shape."""
    if estimate.dim() != 3 or estimate.shape != reference.shape:
        raise ValueError(f"{name} takes estimate and reference of the same shape "
                         f"(batch, channels, time); got {tuple(estimate.shape)} and "
                         f"{tuple(reference.shape)}.")


class _RealFFT(torch.autograd.Function):
    """torch.fft.rfft over the last dimension, whose backward is one inverse real FFT.

    torch's own backward of a real FFT zero-pads the gradient to the full two-sided spectrum
    and runs a complex FFT of it: on CPU, with the copies around it, several times the
    forward's cost. The gradient is Re(sum_k G_k e^{+2 pi i k n / N}) over the one-sided bins,
    which is N * irfft of G with the bins that stand for two (all but DC and Nyquist) halved.
    """

    @staticmethod
    def forward(ctx, frames: torch.Tensor) -> torch.Tensor:
        ctx.length = frames.shape[-1]
        return torch.fft.rfft(frames)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        length = ctx.length
        weights = torch.full((grad.shape[-1],), 0.5, dtype=grad.real.dtype, device=grad.device)
        weights[0] = 1.0
        if length % 2 == 0:
            weights[-1] = 1.0
        return torch.fft.irfft(grad * weights, n=length, norm="forward")


def stft(audio: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor,
         center: bool = True, pad_mode: str = "reflect") -> torch.Tensor:
    """torch.stft(audio, n_fft, hop_length, len(window), window, center, pad_mode,
    return_complex=True) of (N, T) audio: (N, n_fft // 2 + 1, frames), the same values, with a
    backward that costs about what the forward does (`_RealFFT`). The losses' STFTs of the
    reconstruction take a gradient on every training step."""
    if window.shape[0] < n_fft:  # centred in the frame, as torch.stft places it
        left = (n_fft - window.shape[0]) // 2
        window = F.pad(window, (left, n_fft - window.shape[0] - left))
    if center:
        audio = F.pad(audio[:, None], (n_fft // 2, n_fft // 2), mode=pad_mode)[:, 0]
    frames = audio.unfold(-1, n_fft, hop_length) * window
    return _RealFFT.apply(frames).transpose(-1, -2)


def stft_magnitude(audio: torch.Tensor, fft_size: int, hop_size: int, window: torch.Tensor,
                   eps: float = 1e-8) -> torch.Tensor:
    """|STFT| of (N, T) float32 audio as (N, fft_size // 2 + 1, frames), floored at sqrt(eps)
    so logs and their gradients stay finite on silence. Centred frames, reflect padding."""
    pad_mode = "reflect" if audio.shape[-1] > fft_size // 2 else "constant"
    spectrum = stft(audio, fft_size, hop_size, window, pad_mode=pad_mode)
    return torch.sqrt(torch.clamp(spectrum.real ** 2 + spectrum.imag ** 2, min=eps))


def mel_filterbank(fft_size: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    """(n_mels, fft_size // 2 + 1) Slaney-style mel filters from 0 Hz to Nyquist, the same
    bank as librosa's default (what auraloss uses)."""
    bank = torchaudio.functional.melscale_fbanks(
        fft_size // 2 + 1, f_min=0.0, f_max=sample_rate / 2, n_mels=n_mels,
        sample_rate=sample_rate, norm="slaney", mel_scale="slaney")
    return bank.T.contiguous()
