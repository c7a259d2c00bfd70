"""Exported ("unwrapped") models: the best weights of an XP as safetensors, with the config that
built them in the metadata, so inference, `continue_from`, pretransforms and tokenizers can
rebuild the model without the XP folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

FORMAT = "audiotools.export/1"


def write(path: Path, weights: dict[str, dict[str, torch.Tensor]], config: dict[str, Any],
          sig: str, epoch: int) -> Path:
    """Save per-module weights flattened as `<module>.<key>`; refuses to overwrite a file."""
    if path.exists():
        raise CheckpointError(f"{path} exists; remove it or choose another output path.")
    flat = {f"{name}.{key}": value.detach().cpu().contiguous()
            for name, state in weights.items() for key, value in state.items()}
    metadata = {"format": FORMAT, "config": json.dumps(config), "sig": sig, "epoch": str(epoch),
                "modules": json.dumps(sorted(weights))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(flat, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def read(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Per-module weights and the metadata (config parsed) of an exported model."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        flat = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"Cannot read exported model {path}: {error}.") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an audiotools exported model (metadata format="
            f"{metadata.get('format')!r}, expected {FORMAT!r}).")
    weights: dict[str, dict[str, torch.Tensor]] = {}
    for name in json.loads(metadata["modules"]):
        prefix = f"{name}."
        weights[name] = {key[len(prefix):]: value for key, value in flat.items()
                         if key.startswith(prefix)}
    info = dict(metadata)
    info["config"] = json.loads(metadata["config"])
    return weights, info
