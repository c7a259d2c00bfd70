"""`continue_from`: start a new XP from the weights of another XP, a checkpoint, an exported
model, or a stable-audio-tools autoencoder checkpoint (.ckpt/.safetensors, unwrapped or a
Lightning training checkpoint). Every key is accounted for in the log: loaded, missing,
unexpected, or wrong shape."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .. import export
from ..environment import resolve_path
from ..errors import CheckpointError
from . import checkpoint

if TYPE_CHECKING:
    from .base import StandardSolver

logger = logging.getLogger(__name__)


def _source_weights(path: Path, solver: StandardSolver) -> dict[str, dict[str, torch.Tensor]]:
    """Per-module weights of an XP checkpoint, an export, or a stable-audio-tools checkpoint
    (its autoencoder, mapped onto the solver's `model`)."""
    from ..sat import checkpoints as sat
    if path.is_dir():
        path = path / checkpoint.LATEST
    if not path.exists():
        raise CheckpointError(f"continue_from: {path} does not exist.")
    if path.suffix == ".safetensors" and sat.is_audiotools_export(path):
        weights, _ = export.read(path)
        return weights
    if path.suffix == ".safetensors":
        return _sat_weights(sat.read_checkpoint(path, prefer_ema=False), solver)
    state = checkpoint.load(path)
    if sat.is_sat_state(state):
        return _sat_weights(sat.unwrap(state, path, prefer_ema=False), solver)
    best = state.get("best_state") or {}
    return {name: best.get(name) or state[name] for name in solver._best_names
            if name in best or name in state}


def _sat_weights(found, solver: StandardSolver) -> dict[str, dict[str, torch.Tensor]]:
    """An SAT checkpoint's live autoencoder weights in the form of the solver's model."""
    from ..sat.checkpoints import match_weights
    model = getattr(solver, "model", None)
    if model is None:
        raise CheckpointError(f"continue_from={found.path}: a stable-audio-tools checkpoint "
                              "fits the autoencoder solver only.")
    logger.info("continue_from %s", found.describe())
    weights, _ = match_weights(found.weights, model)
    return {"model": weights}


def load_module(module: torch.nn.Module, weights: dict[str, torch.Tensor], label: str) -> int:
    """Load what fits into `module`, log what did not; return the number of tensors loaded."""
    own = module.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    wrong_shape = sorted(k for k in weights if k in own and own[k].shape != weights[k].shape)
    missing = sorted(set(own) - set(fitting) - set(wrong_shape))
    unexpected = sorted(set(weights) - set(own))
    module.load_state_dict(fitting, strict=False)
    logger.info("continue_from %s: loaded %d/%d tensors.", label, len(fitting), len(own))
    for title, keys in (("missing (kept as initialised)", missing),
                        ("unexpected (ignored)", unexpected),
                        ("wrong shape (kept as initialised)", wrong_shape)):
        if keys:
            logger.warning("continue_from %s: %d %s: %s", label, len(keys), title,
                           ", ".join(keys))
    return len(fitting)


def continue_from(solver: StandardSolver, source: str) -> None:
    path = resolve_path(source)
    names = solver._best_names
    weights = _source_weights(path, solver)
    loaded = 0
    for name in names:
        if name not in weights:
            logger.warning("continue_from %s: no weights for module '%s'.", path, name)
            continue
        loaded += load_module(getattr(solver, name), weights[name], f"{path} [{name}]")
        if name in solver.ema:
            solver.ema[name].reset()
    if loaded == 0:
        raise CheckpointError(
            f"continue_from={source}: no tensor of {path} fits this model "
            f"(modules {names}); is it from another model family or architecture?")
