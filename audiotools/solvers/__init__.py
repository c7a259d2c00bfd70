"""Solvers: the training logic of each model family on top of `StandardSolver`."""
from .base import StandardSolver

__all__ = ["StandardSolver"]
