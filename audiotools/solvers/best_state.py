"""The best state of a run: which valid metric decides it and in which direction, the weights
it was reached with, and early stopping.

Everything that decides is derived from the committed history (valid metrics per epoch), so a
resumed run takes the same decisions, and stops at the same epoch, as the original would.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

Weights = dict[str, dict[str, torch.Tensor]]


class BestState:
    """Best valid `metric` (lower is better for mode 'min', higher for 'max'), the CPU copy of
    the weights of the modules in `names` at that epoch (checkpoint key 'best_state'), and
    early stopping after `patience` epochs without an improvement of more than `min_delta`."""

    def __init__(self, metric: str, mode: Literal["min", "max"], patience: int | None = None,
                 min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"best_mode={mode!r}; use 'min' or 'max'.")
        self.metric = metric
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.names: list[str] = []
        self.weights: Weights = {}

    def is_better(self, value: float, reference: float, margin: float = 0.0) -> bool:
        """Whether `value` beats `reference` by more than `margin`."""
        if self.mode == "min":
            return value < reference - margin
        return value > reference + margin

    def values(self, history: Sequence[Mapping[str, Any]]) -> list[float]:
        """The metric of every epoch of `history` whose valid stage ran."""
        return [float(epoch["valid"][self.metric]) for epoch in history
                if "valid" in epoch and self.metric in epoch["valid"]]

    def improves(self, value: float, previous: Sequence[float]) -> bool:
        """Whether `value` is a new best after the `previous` values (the first one always is)."""
        if not previous:
            return True
        best = min(previous) if self.mode == "min" else max(previous)
        return self.is_better(value, best)

    def snapshot(self, weights: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """Keep a CPU copy of `weights` (per module name) as the best state."""
        for name, state in weights.items():
            self.weights[name] = {k: v.detach().cpu().clone() for k, v in state.items()}

    def should_stop(self, values: Sequence[float]) -> bool:
        """Early stop: the last `patience` of `values` brought no improvement of more than
        `min_delta` over the best before them."""
        if self.patience is None or len(values) <= self.patience:
            return False
        best_index = 0
        for index, value in enumerate(values):
            if self.is_better(value, values[best_index], self.min_delta):
                best_index = index
        return len(values) - 1 - best_index >= self.patience

    def state_dict(self) -> Weights:
        return self.weights

    def load_state_dict(self, state: Weights) -> None:
        self.weights.clear()
        self.weights.update(state)
