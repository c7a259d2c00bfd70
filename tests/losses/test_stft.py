"""The losses' STFT: torch.stft's values, and its gradient through one inverse real FFT."""
from __future__ import annotations

import pytest
import torch

from audiotools.losses.stft import stft


@pytest.mark.parametrize(("n_fft", "hop", "win_length", "center", "pad_mode"), [
    (64, 16, 64, True, "reflect"), (63, 16, 63, True, "reflect"), (64, 16, 48, True, "reflect"),
    (32, 8, 32, False, "reflect"), (32, 32, 32, True, "constant")])
def test_values_and_gradient_are_torch_stfts(n_fft, hop, win_length, center, pad_mode):
    audio = torch.randn(3, 400, dtype=torch.float64, requires_grad=True)
    window = torch.hann_window(win_length, dtype=torch.float64)
    ours = stft(audio, n_fft, hop, window, center=center, pad_mode=pad_mode)
    theirs = torch.stft(audio, n_fft, hop, win_length, window, center=center,
                        pad_mode=pad_mode, return_complex=True)
    torch.testing.assert_close(ours, theirs)
    # A loss that reads the real and imaginary parts and the magnitude, as the losses do.
    weights = torch.randn(theirs.shape, dtype=theirs.dtype)
    grads = [torch.autograd.grad((spectrum * weights).real.sum() + spectrum.abs().sum(), audio)[0]
             for spectrum in (ours, theirs)]
    torch.testing.assert_close(*grads)


def test_gradient_passes_gradcheck():
    audio = torch.randn(2, 100, dtype=torch.float64, requires_grad=True)
    window = torch.hann_window(16, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: torch.view_as_real(stft(x, 16, 4, window)),
                                    (audio,))
