"""L1 waveform loss: value, float32 under autocast, shape errors."""
from __future__ import annotations

import pytest
import torch

from audiotools.losses import l1_waveform_loss


def test_l1_waveform_loss():
    reference = torch.zeros(2, 1, 100)
    estimate = (reference + 0.5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = l1_waveform_loss(estimate, reference)
    assert value.dtype == torch.float32 and value.item() == 0.5
    with pytest.raises(ValueError, match="l1_waveform_loss"):
        l1_waveform_loss(torch.zeros(2, 1, 100), torch.zeros(2, 2, 100))
