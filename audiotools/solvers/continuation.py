"""`continue_from`: start a new XP from the weights of another XP, a checkpoint, an exported
model, or another tool's checkpoint (audiotools.io.loading reads them all). Every key is
accounted for in the log: loaded, missing, unexpected, or wrong shape."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from ..environment import resolve_path
from ..errors import CheckpointError
from ..io.loading import training_source

if TYPE_CHECKING:
    from .base import StandardSolver

logger = logging.getLogger(__name__)


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
    names = solver.best.names
    weights, info = training_source(source, {name: getattr(solver, name) for name in names})
    solver.check_continued_from(info)
    empty = []
    for name in names:
        if name not in weights:
            logger.warning("continue_from %s: no weights for module '%s'.", path, name)
            continue
        if load_module(getattr(solver, name), weights[name], f"{path} [{name}]") == 0:
            empty.append(name)
        if name in solver.ema:
            solver.ema[name].reset()
    # The model itself (the first module) must take something: a run that continued from a
    # model of another size would otherwise train from scratch, a log line aside.
    if names and (names[0] in empty or len(empty) == len(names)):
        raise CheckpointError(
            f"continue_from={source}: no tensor of {path} fits this model's "
            f"{names[0] if names[0] in empty else 'modules'} (modules {names}); is it from "
            "another model family, architecture or size?")
