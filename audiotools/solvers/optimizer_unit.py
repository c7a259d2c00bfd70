"""One optimizer with everything that updates it: LR schedule, gradient scaler, accumulation,
cross-rank gradient averaging and clipping.

A solver may hold several optimizers (an autoencoder's and its discriminator's); each is
updated the same way, so each gets one of these instead of parallel name-keyed bookkeeping.
"""
from __future__ import annotations

from typing import Any

import torch

from .. import distributed
from ..config import OptimConfig, ScheduleConfig
from ..errors import ConfigError
from .optim import Scheduler, build_scheduler


class OptimizerUnit:
    """`optimizer` with its schedule (None for a constant rate) and its GradScaler (active in
    16-mixed only, where float16 gradients underflow without it)."""

    def __init__(self, optimizer: torch.optim.Optimizer, optim: OptimConfig,
                 schedule: ScheduleConfig, total_updates: int, device_type: str,
                 scale_gradients: bool):
        self.optimizer = optimizer
        self.accumulation = optim.accumulation
        self.max_norm = optim.max_norm
        self.plateau_metric = schedule.plateau.metric
        self.scaler = torch.amp.GradScaler(device_type, enabled=scale_gradients)
        self.scheduler: Scheduler | None = build_scheduler(optimizer, schedule, total_updates)

    @property
    def on_plateau(self) -> bool:
        """Whether the schedule steps on a valid metric rather than on each update."""
        return isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def states(self) -> dict[str, Any]:
        """The checkpointed parts by kind ('scaler', 'scheduler'); the optimizer itself is
        registered by the solver that owns it."""
        states: dict[str, Any] = {"scaler": self.scaler}
        if self.scheduler is not None:
            states["scheduler"] = self.scheduler
        return states

    def backward(self, loss: torch.Tensor, batch_index: int) -> bool:
        """Backward `loss` (scaled, and divided over the accumulation window) and update at the
        window's last batch; True when it updated."""
        scaled = loss / self.accumulation if self.accumulation > 1 else loss
        self.scaler.scale(scaled).backward()
        if (batch_index + 1) % self.accumulation != 0:
            return False
        self.step()
        return True

    def step(self) -> None:
        """One update: average gradients across ranks, clip, step, and advance the schedule
        (a plateau schedule steps in `step_plateau` instead)."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        distributed.average_gradients(params)
        if self.max_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and not self.on_plateau:
            self.scheduler.step()

    def step_plateau(self, metrics: dict[str, Any]) -> None:
        """Feed the valid metric to a plateau schedule; other schedules ignore it."""
        scheduler = self.scheduler
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            return
        if self.plateau_metric not in metrics:
            raise ConfigError(f"schedule.plateau.metric={self.plateau_metric!r} is not a "
                              f"valid metric; valid metrics are {sorted(metrics)}.")
        scheduler.step(metrics[self.plateau_metric])
