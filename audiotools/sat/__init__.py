"""stable-audio-tools (SAT) compatibility: its training options, model and dataset configs, and
checkpoints, converted to audiotools recipes and models (docs/stable_audio_tools.md).

It plugs into audiotools (a foreign checkpoint format for loading, `migrate`/`train`); the
core never imports it. Its public functions are imported on first use, so the commands that
only parse SAT flags start fast."""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "load_architecture": "model",
    "load_autoencoder": "checkpoints",
    "load_diffusion": "diffusion_checkpoints",
    "read_diffusion_checkpoint": "diffusion_checkpoints",
    "read_checkpoint": "checkpoints",
    "remove_weight_norm": "checkpoints",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
