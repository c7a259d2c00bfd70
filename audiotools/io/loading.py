"""Models from wherever they are: an exported `.safetensors`, an XP (SIG, //sig/SIG, its
folder or a checkpoint.th: its best weights), or another tool's checkpoint through a foreign
format registered in `audiotools.families.FOREIGN_FORMATS` (stable-audio-tools' is one).

The family registry rebuilds the architecture from the model section the source carries, so
loading never needs the Hydra tree, and never imports the training stack.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ..environment import resolve_path
from ..errors import CheckpointError
from ..families import FOREIGN_FORMATS, Family, get_family, import_object
from . import checkpoint
from .export import Export, Weights, checkpoint_of, from_checkpoint, is_export, read


class ForeignFormat(Protocol):
    """A reader of another tool's checkpoint files."""

    name: str

    def accepts(self, path: Path) -> bool:
        """Whether `path` looks like one of this tool's checkpoints."""

    def load(self, path: Path, **options: Any) -> tuple[Export, torch.nn.Module]:
        """The model (its weights loaded, for inference) and what describes it (family,
        model section; no weights)."""

    def weights_for(self, path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The weights to continue training from, in the layout of `model`."""


@dataclass
class LoadedModel:
    family: Family
    model: torch.nn.Module
    export: Export


def foreign_formats() -> list[ForeignFormat]:
    return [import_object(target) for target in FOREIGN_FORMATS]


def _foreign_format(path: Path, source: str) -> ForeignFormat:
    if not path.exists():
        raise CheckpointError(f"{source}: {path} does not exist.")
    formats = foreign_formats()
    for candidate in formats:
        if candidate.accepts(path):
            return candidate
    raise CheckpointError(
        f"{source}: not a model audiotools can read. Give an exported .safetensors, an XP "
        "(SIG, //sig/SIG, its folder or a checkpoint.th), or a checkpoint of "
        f"{', '.join(f.name for f in formats)}.")


def _is_xp(source: str, path: Path) -> bool:
    """An XP folder (a folder no foreign format accepts, or one with a checkpoint.th), a
    checkpoint.th, or a bare signature (no such file here)."""
    if path.is_dir():
        return (path / checkpoint.LATEST).exists() or not any(
            candidate.accepts(path) for candidate in foreign_formats())
    return path.suffix == ".th" or (not path.exists() and "/" not in source)


def locate(source: str | Path) -> tuple[str, Path]:
    """("export", file), ("xp", its checkpoint) or ("foreign", file) for `source`, resolved
    once (a `//recipe/` path composes a Hydra config to find its XP)."""
    text = str(source)
    path = resolve_path(text)
    if path.suffix == ".safetensors" and not path.exists():
        raise CheckpointError(f"{path} does not exist.")
    if is_export(path):
        return "export", path
    if _is_xp(text, path):
        return "xp", checkpoint_of(text, path)
    return "foreign", path


def _read_located(kind: str, path: Path, source: str | Path) -> Export:
    if kind == "export":
        return read(path)
    if kind == "xp":
        return from_checkpoint(path)
    raise CheckpointError(f"{source}: not an audiotools export or XP.")


def read_export(source: str | Path) -> Export:
    """What an audiotools source holds: an export file, or an XP's best state."""
    return _read_located(*locate(source), source)


def build_from_export(export: Export, device: str | torch.device = "cpu") -> LoadedModel:
    """The family's model rebuilt from the export's model section, its weights loaded."""
    family = get_family(export.family, f"{export.label}: family")
    if "model" not in export.weights:
        raise CheckpointError(f"{export.label} holds no 'model' weights "
                              f"(modules: {sorted(export.weights)}).")
    model = family.new_model(export.model, export.label)
    missing, unexpected = model.load_state_dict(export.weights["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{export.label}: the weights do not fit the {family.name} model its config "
            f"describes (missing: {sorted(missing)[:8]}, unexpected: {sorted(unexpected)[:8]}).")
    return LoadedModel(family, model.to(device).eval(), export)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _expected(export: Export, family: str | None) -> Export:
    if family is not None and export.family != family:
        found = export.family or "unknown"
        raise CheckpointError(f"{export.label} is {_article(found)} {found} model; this needs "
                              f"{_article(family)} {family} model.")
    return export


def load_model(source: str | Path, device: str | torch.device = "cpu",
               family: str | None = None, **options: Any) -> LoadedModel:
    """The model of any source, in eval mode on `device`; `family` refuses any other family
    before building anything. `options` go to a foreign format (e.g. stable-audio-tools'
    `sat_model_config`)."""
    from ..inference.inputs import checked_device
    checked_device(device)
    kind, path = locate(source)
    if kind != "foreign" and options:
        raise CheckpointError(f"{path} is an audiotools {kind}: it needs no "
                              f"{', '.join(sorted(options))}.")
    if kind != "foreign":
        return build_from_export(_expected(_read_located(kind, path, source), family), device)
    export, model = _foreign_format(path, str(source)).load(path, **options)
    _expected(export, family)
    return LoadedModel(get_family(export.family), model.to(device).eval(), export)


def load_pipeline(source: str | Path, device: str | torch.device = "cpu",
                  family: str | None = None, **options: Any) -> Any:
    """The family's inference pipeline around the model of `source`."""
    loaded = load_model(source, device, family, **options)
    return loaded.family.pipeline_class().from_model(loaded.model, loaded.export)


def training_source(source: str, models: Mapping[str, torch.nn.Module],
                    ) -> tuple[Weights, dict[str, Any]]:
    """Per-module weights to start a new XP from (`continue_from`): an export's, an XP's best
    state (its live weights where it has none), or a foreign checkpoint's live weights mapped
    onto `models["model"]`; and what the source records of its model beside them (its
    `export_info`: a classifier's class names, ...; {} for another tool's checkpoint)."""
    kind, path = locate(source)
    if kind == "export":
        exported = read(path)
        return exported.weights, dict(exported.info)
    if kind == "xp":
        state = checkpoint.load(path)
        best = state.get("best_state") or {}
        return ({name: best.get(name) or state[name] for name in models
                 if name in best or name in state}, dict(state.get("export_info") or {}))
    reader = _foreign_format(path, f"continue_from={source}")
    if "model" not in models:
        raise CheckpointError(f"continue_from={source}: a {reader.name} checkpoint loads into "
                              "a solver's `model`, and this solver has none.")
    return {"model": reader.weights_for(path, models["model"])}, {}

