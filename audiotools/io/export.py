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

from .environment import resolve_path, xp_folder
from .errors import CheckpointError

FORMAT = "audiotools.export/1"


def write(path: Path, weights: dict[str, dict[str, torch.Tensor]], config: dict[str, Any],
          sig: str, epoch: int, info: dict[str, Any] | None = None) -> Path:
    """Save per-module weights flattened as `<module>.<key>`; refuses to overwrite a file."""
    if path.exists():
        raise CheckpointError(f"{path} exists; remove it or choose another output path.")
    flat = {f"{name}.{key}": value.detach().cpu().contiguous()
            for name, state in weights.items() for key, value in state.items()}
    metadata = {"format": FORMAT, "config": json.dumps(config), "sig": sig, "epoch": str(epoch),
                "modules": json.dumps(sorted(weights)), "info": json.dumps(info or {})}
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
    parsed: dict[str, Any] = dict(metadata)
    parsed["config"] = json.loads(metadata["config"])
    parsed["info"] = json.loads(metadata.get("info", "{}"))
    return weights, parsed


def checkpoint_of(source: str) -> Path:
    """`SIG`, `//sig/SIG`, an XP folder or a checkpoint file -> the checkpoint path."""
    candidate = resolve_path(source)
    if not candidate.exists() and "/" not in source:
        candidate = xp_folder(source)
    if candidate.is_dir():
        candidate = candidate / "checkpoint.th"
    if not candidate.exists():
        raise CheckpointError(f"{source!r}: no checkpoint at {candidate} (give an XP signature, "
                              "//sig/SIG, an XP folder or a checkpoint.th path).")
    return candidate


def export_checkpoint(source: str, out: Path) -> Path:
    """Write the best weights of an XP's checkpoint as an exported model."""
    from .solvers import checkpoint
    path = checkpoint_of(source)
    state = checkpoint.load(path)
    best = state.get("best_state") or {}
    if not best:
        raise CheckpointError(
            f"{path} has no best state yet: no valid stage has finished. Train at least one "
            "epoch with a valid split, then export.")
    return write(out, best, state["xp.cfg"], str(state.get("xp.sig", "")),
                 len(state.get("history", [])), state.get("export_info"))
