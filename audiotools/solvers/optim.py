"""Optimizer and learning-rate schedule builders.

Schedules count optimizer updates (not batches), so gradient accumulation and
`optim.updates_per_epoch` do not change their shape. Plateau steps once per validation.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import torch

from ..config import OptimConfig, ScheduleConfig

logger = logging.getLogger(__name__)

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig,
                    lr: float | None = None) -> torch.optim.Optimizer:
    """Adam or AdamW over `params`; `lr` overrides cfg.lr (a discriminator's own rate, say).

    The fused implementation runs where torch has one (CPU and CUDA tensors): on a CPU torch's
    default is a per-parameter loop, which costs a small model more than its convolutions."""
    params = list(params)
    fused = all(param.device.type in ("cpu", "cuda") for param in params)
    kwargs = dict(lr=cfg.lr if lr is None else lr, betas=cfg.betas, eps=cfg.eps,
                  weight_decay=cfg.weight_decay, fused=fused or None)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


# What each schedule reads of `schedule:` besides its name (_Multiplier, build_scheduler).
SCHEDULE_KEYS: dict[str, tuple[str, ...]] = {
    "none": ("warmup_steps",), "linear_warmup": ("warmup_steps",),
    "cosine": ("warmup_steps", "min_lr_ratio"),
    "step": ("warmup_steps", "step_size", "gamma"), "inverse_sqrt": ("warmup_steps",),
    "inverse": ("warmup_steps", "inv_gamma", "power", "exp_warmup", "min_lr_ratio"),
    "plateau": ("plateau",)}


class _Multiplier:
    """lr multiplier as a function of the update index; a class (not a closure) so that
    LambdaLR's state_dict stays plain data."""

    def __init__(self, cfg: ScheduleConfig, total_updates: int):
        self.name = cfg.name
        self.warmup = cfg.warmup_steps
        self.min_ratio = cfg.min_lr_ratio
        self.step_size = cfg.step_size
        self.gamma = cfg.gamma
        self.inv_gamma = cfg.inv_gamma
        self.power = cfg.power
        self.exp_warmup = cfg.exp_warmup
        self.total = max(1, total_updates)

    def __call__(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        after = step - self.warmup
        if self.name == "cosine":
            progress = min(1.0, after / max(1, self.total - self.warmup))
            return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if self.name == "step":
            return self.gamma ** (after // self.step_size)
        if self.name == "inverse_sqrt":
            return math.sqrt(max(1, self.warmup) / (step + 1))
        if self.name == "inverse":
            decay = (1 + after / self.inv_gamma) ** -self.power
            return (1 - self.exp_warmup ** (step + 1)) * max(self.min_ratio, decay)
        return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig,
                    total_updates: int) -> Scheduler | None:
    """None for a constant rate; ReduceLROnPlateau for `plateau`; else a LambdaLR."""
    if cfg.name == "none" and cfg.warmup_steps == 0:
        return None
    if cfg.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=cfg.plateau.mode, factor=cfg.plateau.factor,
            patience=cfg.plateau.patience, threshold=cfg.plateau.threshold,
            min_lr=cfg.plateau.min_lr)
    return _ConfiguredLambdaLR(optimizer, _Multiplier(cfg, total_updates))


class _ConfiguredLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR whose multiplier stays the config's when a checkpoint is loaded: LambdaLR
    restores its multiplier's attributes, so an XP trained further (`optim.epochs` grown)
    kept the old cosine's length and trained the new epochs at its floor (0 by default). The
    position in the schedule (`last_epoch`, updates done) is restored."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("lr_lambdas") or []
        super().load_state_dict({**state_dict, "lr_lambdas": [None] * len(self.lr_lambdas)})
        for multiplier, old in zip(self.lr_lambdas, saved, strict=False):
            before = (old or {}).get("total")
            if multiplier.name == "cosine" and before not in (None, multiplier.total):
                logger.warning(
                    "The %s schedule spans %d updates now (%d when the checkpoint was written; "
                    "optim.epochs changed): from update %d on, the rate follows the new "
                    "length, %.3g of the base rate.", multiplier.name, multiplier.total, before,
                    self.last_epoch, multiplier(self.last_epoch))
