"""Exported ("unwrapped") models: the best weights of an XP as safetensors, with what rebuilds
the model in the metadata (its family, its `model:` section, the whole XP config), so
inference, `continue_from`, pretransforms and tokenizers need no XP folder.

Format 2 (this one) names the family and the model section; format 1 exports (before the
family registry) kept them in the XP config and the family's own info, and still load.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..environment import resolve_path, xp_folder
from ..errors import CheckpointError, writing
from . import checkpoint
from .atomic import atomic_path

FORMAT_PREFIX = "audiotools.export/"
VERSION = 2
FORMAT = f"{FORMAT_PREFIX}{VERSION}"

Weights = dict[str, dict[str, torch.Tensor]]


@dataclass
class Export:
    """A model as an export holds it (or as an XP's best state would be exported)."""

    family: str
    # The `model:` section that rebuilds the architecture.
    model: dict[str, Any]
    # Per-module weights ("model", and any other module the family registered).
    weights: Weights
    # Family extras an inference pipeline needs (class names, feature settings...).
    info: dict[str, Any] = field(default_factory=dict)
    # The whole config of the XP it came from.
    config: dict[str, Any] = field(default_factory=dict)
    sig: str = ""
    epoch: int = 0
    # Where it was read from, for messages.
    label: str = ""


def from_parts(weights: Weights, config: dict[str, Any], info: dict[str, Any], sig: str,
               epoch: int, label: str) -> Export:
    """An Export from an XP config and the solver's export info, of any version: older
    checkpoints and format-1 exports kept the model section as info "model"/"model_kwargs"
    or only in the config, and the family only as the config's `solver`."""
    info = dict(info)
    family = info.pop("family", None) or str(config.get("solver", ""))
    model = info.pop("model", None) or info.pop("model_kwargs", None) or config.get("model")
    return Export(family, dict(model or {}), weights, info, config, sig, epoch, label)


def export_version(path: Path) -> int | None:
    """The export format version of a .safetensors file; None for any other file."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            found = (handle.metadata() or {}).get("format", "")
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"Cannot read {path}: {error}.") from None
    if not found.startswith(FORMAT_PREFIX):
        return None
    version = found[len(FORMAT_PREFIX):]
    if not version.isdigit():
        raise CheckpointError(f"{path}: unknown export format {found!r}.")
    return int(version)


def is_export(path: Path) -> bool:
    return path.suffix == ".safetensors" and path.is_file() and export_version(path) is not None


def write(path: Path, export: Export) -> Path:
    """Save per-module weights flattened as `<module>.<key>`; refuses to overwrite a file."""
    if path.exists():
        raise CheckpointError(f"{path} exists; remove it or choose another output path.")
    flat = {f"{name}.{key}": value.detach().cpu().contiguous()
            for name, state in export.weights.items() for key, value in state.items()}
    metadata = {"format": FORMAT, "family": export.family, "model": json.dumps(export.model),
                "config": json.dumps(export.config), "info": json.dumps(export.info),
                "sig": export.sig, "epoch": str(export.epoch),
                "modules": json.dumps(sorted(export.weights))}
    try:
        with writing(path), atomic_path(path, exclusive=True) as tmp:
            save_file(flat, str(tmp), metadata=metadata)
    except FileExistsError:  # another export got there first
        raise CheckpointError(f"{path} exists (written while this export ran); remove it or "
                              "choose another output path.") from None
    return path


def read(path: Path) -> Export:
    """An exported model of any format version up to this one."""
    version = export_version(path)
    if version is None:
        raise CheckpointError(f"{path} is not an audiotools exported model (its metadata has "
                              f"no {FORMAT_PREFIX}N format).")
    if version > VERSION:
        raise CheckpointError(f"{path} was exported in format {version} by a newer audiotools; "
                              f"this one reads formats up to {VERSION}: upgrade audiotools.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        flat = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"Cannot read exported model {path}: {error}.") from None
    weights: Weights = {}
    for name in json.loads(metadata["modules"]):
        prefix = f"{name}."
        weights[name] = {key[len(prefix):]: value for key, value in flat.items()
                         if key.startswith(prefix)}
    info = json.loads(metadata.get("info", "{}"))
    if version >= 2:
        info = {"family": metadata["family"], "model": json.loads(metadata["model"]), **info}
    return from_parts(weights, json.loads(metadata["config"]), info, metadata.get("sig", ""),
                      int(metadata.get("epoch", 0)), str(path))


def checkpoint_of(source: str, resolved: Path | None = None) -> Path:
    """`SIG`, `//sig/SIG`, an XP folder or a checkpoint file -> the checkpoint path
    (`resolved`: `resolve_path(source)` when the caller has it already)."""
    candidate = resolve_path(source) if resolved is None else resolved
    if not candidate.exists() and "/" not in source:
        candidate = xp_folder(source)
    if candidate.is_dir():
        candidate = candidate / checkpoint.LATEST
    if not candidate.exists():
        raise CheckpointError(f"{source!r}: no checkpoint at {candidate} (give an XP signature, "
                              "//sig/SIG, an XP folder or a checkpoint.th path).")
    return candidate


def from_checkpoint(path: Path) -> Export:
    """The best state of an XP checkpoint, as `audiotools export` would write it."""
    state = checkpoint.load(path)
    best = state.get("best_state") or {}
    if not best:
        raise CheckpointError(
            f"{path} has no best state yet: no valid stage has finished. Train at least one "
            "epoch with a valid split first.")
    return from_parts(best, state["xp.cfg"], state.get("export_info") or {},
                      str(state.get("xp.sig", "")), len(state.get("history", [])), str(path))


SOURCES = "an XP signature, //sig/SIG, an XP folder or its checkpoint.th"


def _xp_source(source: str) -> Path:
    """The checkpoint `audiotools export` reads for `source`; a file that is no XP
    checkpoint (an export, audio...) is refused as what it is, before torch tries to
    unpickle it and blames a damaged XP."""
    path = resolve_path(source)
    if path.is_file() and path.suffix != ".th":
        if path.suffix == ".safetensors" and _readable_export(path):
            raise CheckpointError(
                f"{source} is already an exported model: use it as it is (audiotools "
                f"classify/generate, continue_from=...). Export reads {SOURCES}.")
        raise CheckpointError(f"{source} is not an XP checkpoint or XP folder: export reads "
                              f"{SOURCES}.")
    return checkpoint_of(source, path)


def _readable_export(path: Path) -> bool:
    try:
        return export_version(path) is not None
    except CheckpointError:
        return False


def export_checkpoint(source: str, out: Path) -> tuple[Path, str]:
    """Write the best weights of an XP's checkpoint as an exported model (an OUT not named
    .safetensors is refused: tools pick the reader by its suffix); (its path, its family:
    a family name, or the `package.module:Class` of a solver of a user's own)."""
    if out.suffix != ".safetensors":
        raise CheckpointError(f"{out}: an export is a safetensors file, so its name must end "
                              f"in .safetensors (e.g. {out.stem or 'model'}.safetensors).")
    folder = next((parent for parent in Path(out).resolve().parents
                   if checkpoint.is_xp_folder(parent)), None)
    if folder is not None:
        raise CheckpointError(f"{out} is inside the XP folder {folder}, which `dora run "
                              "--clear` deletes with everything in it; export outside it.")
    export = from_checkpoint(_xp_source(source))
    return write(out, export), export.family
