"""Exponential moving average of a model's weights, kept in float32 beside the model."""
from __future__ import annotations

from typing import Literal

import torch


class ModelEMA:
    """EMA of every floating parameter of `module`. Floating buffers are averaged too
    (`buffers="average"`: BatchNorm statistics that match the averaged weights) or copied
    (`"copy"`: state that is itself a running estimate, such as VQ codebooks that start at zero
    and jump at k-means initialisation); integer buffers are always copied."""

    def __init__(self, module: torch.nn.Module, decay: float,
                 buffers: Literal["average", "copy"] = "average"):
        self.module = module
        self.decay = decay
        self.copied = ({name for name, _ in module.named_buffers()} if buffers == "copy"
                       else set())
        self.reset()

    def reset(self) -> None:
        """Restart the average from the module's current weights (after loading new ones)."""
        self.shadow = {name: value.detach().clone().float()
                       for name, value in self.module.state_dict().items()}

    @torch.no_grad()
    def update(self, decay: float | None = None) -> None:
        """Move the average towards the module's weights; `decay` overrides the constant one
        for this update (a warm-up)."""
        decay = self.decay if decay is None else decay
        averaged: list[tuple[torch.Tensor, torch.Tensor]] = []
        for name, value in self.module.state_dict().items():
            shadow = self.shadow[name]
            if torch.is_floating_point(value) and name not in self.copied:
                averaged.append((shadow, value.float()))
            else:
                shadow.copy_(value)
        if averaged:  # one fused pass over every tensor (a per-tensor loop costs more on CPU)
            shadows, values = zip(*averaged, strict=True)
            torch._foreach_lerp_(list(shadows), list(values), 1 - decay)

    def buffer_shadows(self) -> list[torch.Tensor]:
        """The averages of the module's floating buffers: per rank under DDP, where each
        rank's BatchNorm statistics move with its own batches."""
        return [self.shadow[name] for name, buffer in self.module.named_buffers()
                if torch.is_floating_point(buffer) and name in self.shadow]

    def weights(self) -> dict[str, torch.Tensor]:
        """The averaged weights in the module's own dtypes, ready for load_state_dict."""
        own = self.module.state_dict()
        return {name: shadow.to(own[name].dtype) for name, shadow in self.shadow.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            self.shadow[name].copy_(value)
