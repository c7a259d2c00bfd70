"""audiotools: a research framework for training audio models (Flashy solvers, Dora XPs)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def load(source: str | Path, device: Any = "cpu", sat_model_config: Any = None,
         ) -> torch.nn.Module:
    """A ready model (eval mode) from an exported `.safetensors`, an XP (SIG, //sig/SIG,
    folder, checkpoint), or a stable-audio-tools checkpoint with its model config
    (`sat_model_config`). Imported lazily so the console script starts fast."""
    from .inference.loading import load as _load
    return _load(source, device, sat_model_config)
