"""Waveform-domain reconstruction loss (stable-audio-tools' `time` loss, type `l1`)."""
from __future__ import annotations

import torch

from .stft import check_pair, full_precision


def l1_waveform_loss(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean absolute sample difference, in float32 even under autocast (a bf16 difference of
    two close waveforms is mostly rounding)."""
    check_pair("l1_waveform_loss", estimate, reference)
    with full_precision(estimate.device):
        return torch.nn.functional.l1_loss(estimate.float(), reference.float())
