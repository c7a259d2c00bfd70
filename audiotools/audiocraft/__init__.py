"""AudioCraft compatibility: its exported LM (`state_dict.bin`, MusicGen's) and EnCodec
compression models (`compression_state_dict.bin`) converted to audiotools' LM and autoencoder.

It plugs into audiotools as a foreign checkpoint format (`audiotools.load`, `load_codec`,
`continue_from`); the core never imports it. Public functions are imported on first use."""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "AudioCraftLM": "lm",
    "load_lm": "lm",
    "load_compression_model": "encodec",
    "read_package": "package",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
