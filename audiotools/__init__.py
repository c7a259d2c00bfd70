"""audiotools: a research framework for training audio models (Flashy solvers, Dora XPs)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def load(source: str | Path, device: Any = "cpu", **options: Any) -> Any:
    """The inference pipeline of a trained model (its family's, from audiotools.families):
    from an exported `.safetensors`, an XP (SIG, //sig/SIG, folder, checkpoint.th: its best
    weights), or another tool's checkpoint; a stable-audio-tools one takes its model config
    as `sat_model_config=` unless the checkpoint embeds it. The model is in eval mode on
    `device` (`pipeline.model`). Imported lazily so the console script starts fast."""
    from .io.loading import load_pipeline
    return load_pipeline(source, device, **options)
