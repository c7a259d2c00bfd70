"""`audiotools.load`: a ready model (eval mode) from an exported file or an XP.

Exported models carry their config in the safetensors metadata; an XP's checkpoint carries the
same in its state. Either way the family's own builder rebuilds the architecture, so inference
never needs the Hydra tree or the XP folder.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .. import export
from ..environment import resolve_path
from ..errors import CheckpointError

Weights = dict[str, dict[str, torch.Tensor]]


def _autoencoder(config: dict[str, Any], info: dict[str, Any]) -> torch.nn.Module:
    from ..models.autoencoder import build_autoencoder
    return build_autoencoder(info.get("model") or config["model"])


def _classifier(config: dict[str, Any], info: dict[str, Any]) -> torch.nn.Module:
    from ..models.cnn import AudioCNN
    if "model_kwargs" not in info:
        raise CheckpointError("this classifier has no model arguments in its metadata.")
    return AudioCNN(**info["model_kwargs"])


# Solver family -> builder of its main model ("model" in the weights) from (config, info).
BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], torch.nn.Module]] = {
    "autoencoder": _autoencoder,
    "classifier": _classifier,
}


def _read(source: str | Path) -> tuple[Weights, dict[str, Any], dict[str, Any], str]:
    """(weights, config, info, label) of an exported file or an XP's best state."""
    path = resolve_path(str(source))
    if path.suffix == ".safetensors":
        if not path.exists():
            raise CheckpointError(f"{path} does not exist.")
        weights, metadata = export.read(path)
        return weights, metadata["config"], metadata["info"], str(path)
    from ..solvers import checkpoint
    checkpoint_path = export.checkpoint_of(str(source))
    state = checkpoint.load(checkpoint_path)
    best = state.get("best_state") or {}
    if not best:
        raise CheckpointError(f"{checkpoint_path} has no best state yet: train at least one "
                              "epoch with a valid split first.")
    return best, state["xp.cfg"], state.get("export_info") or {}, str(checkpoint_path)


def _is_sat_checkpoint(path: Path) -> bool:
    """A stable-audio-tools .ckpt, or a .safetensors that is not an audiotools export."""
    from ..sat.checkpoints import is_audiotools_export
    return path.is_file() and (path.suffix == ".ckpt" or (
        path.suffix == ".safetensors" and not is_audiotools_export(path)))


def load(source: str | Path, device: str | torch.device = "cpu",
         sat_model_config: str | Path | Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The model of an exported `.safetensors`, or the best (EMA) weights of an XP given as
    SIG, //sig/SIG, an XP folder or a checkpoint.th; in eval mode on `device`.

    A stable-audio-tools autoencoder checkpoint (.ckpt or .safetensors, unwrapped or a training
    checkpoint) loads too, built from its SAT model config `sat_model_config` (a JSON path or
    its content; not needed when the checkpoint embeds it)."""
    path = resolve_path(str(source))
    if sat_model_config is not None or _is_sat_checkpoint(path):
        from ..sat import load_autoencoder
        return load_autoencoder(path, sat_model_config, device=device)
    weights, config, info, label = _read(source)
    family = info.get("family") or str(config.get("solver", ""))
    if family not in BUILDERS:
        raise CheckpointError(f"{label}: no loader for solver family {family!r}; "
                              f"known: {', '.join(sorted(BUILDERS))}.")
    if "model" not in weights:
        raise CheckpointError(f"{label} holds no 'model' weights (modules: {sorted(weights)}).")
    model = BUILDERS[family](config, info)
    missing, unexpected = model.load_state_dict(weights["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{label}: the weights do not fit the {family} model its config describes "
            f"(missing: {sorted(missing)[:8]}, unexpected: {sorted(unexpected)[:8]}).")
    return model.to(device).eval()
