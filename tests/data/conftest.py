"""Audio fixtures written on the fly (never committed): tones in any format, rate and layout."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def tone(seconds: float, sample_rate: int, channels: int = 1, freq: float = 440.0,
         ) -> np.ndarray:
    """[T, C] sine, channel c at amplitude 0.5 / (c + 1) so channels are told apart."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = np.sin(2 * np.pi * freq * t)
    return np.stack([wave * 0.5 / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture
def write_tone(tmp_path) -> Callable[..., Path]:
    """write_tone(name, seconds, sample_rate, channels=1, subtype=None) -> path under tmp_path."""

    def write(name: str, seconds: float = 1.0, sample_rate: int = 16000, channels: int = 1,
              subtype: str | None = None, freq: float = 440.0) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seconds, sample_rate, channels, freq), sample_rate, subtype=subtype)
        return path

    return write
