"""Solvers: the training logic of each model family on top of `StandardSolver`.

Nothing is imported here eagerly: the schemas beside the solvers (`<family>_config.py`) are
read to check a config before the training stack (flashy, the loggers) is loaded."""
from __future__ import annotations

from typing import Any

__all__ = ["StandardSolver"]


def __getattr__(name: str) -> Any:
    if name == "StandardSolver":
        from .base import StandardSolver
        return StandardSolver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
