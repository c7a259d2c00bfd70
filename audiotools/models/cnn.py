"""`AudioCNN`: the log-mel classifier of the original trainer, with its sizes configurable.

Shape flow for the default config (`config/model/cnn/default.yaml`, n_mels=64, T frames):

    (B, n_mels, T)                      log-mel features
    unsqueeze -> (B, 1, 64, T)          one input channel
    block 1   -> (B, 32, 32, T/2)       Conv2d 3x3, BatchNorm2d, ReLU, MaxPool2d(2, 2), Dropout
    block 2   -> (B, 64, 16, T/4)       same, pool (2, 2)
    block 3   -> (B, 128, 8, T/16)      same, pool (2, 4)
    mean over time -> (B, 128, 8)
    Conv1d 128->64 (along frequency), ReLU -> (B, 64, 8)
    flatten   -> (B, 512)
    Linear 512->hidden, ReLU, Dropout -> Linear hidden->num_classes (logits)

Pools are (frequency, time) and floor like `nn.MaxPool2d`, so the flattened size depends on
n_mels only: the model accepts any T of at least the product of the time pools.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from pydantic import BaseModel, Field, field_validator, model_validator
from torch import nn

from ..config import Section, validate_section
from ..errors import ConfigError


class CNNConfig(Section):
    """AudioCNN architecture (config/model/cnn/*.yaml); null sizes come from the data."""

    n_mels: int | None = Field(None, ge=1)
    num_classes: int | None = Field(None, ge=2)
    channels: list[int] = Field(default_factory=lambda: [32, 64, 128], min_length=1)
    pools: list[tuple[int, int]] = Field(default_factory=lambda: [(2, 2), (2, 2), (2, 4)])
    kernel_size: int = Field(3, ge=1)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    conv1d_channels: int = Field(64, ge=1)
    conv1d_kernel_size: int = Field(3, ge=1)
    hidden_size: int = Field(128, ge=1)

    @field_validator("kernel_size", "conv1d_kernel_size")
    @classmethod
    def _odd(cls, size: int) -> int:
        """Padded by size // 2 to keep the length: an even kernel grows it by one, and the
        head's input size no longer fits (a shape error at the first step)."""
        if size % 2 == 0:
            raise ValueError(f"{size} is even; use an odd kernel size ({size - 1} or "
                             f"{size + 1})")
        return size

    @model_validator(mode="after")
    def _one_pool_per_block(self) -> CNNConfig:
        if len(self.pools) != len(self.channels):
            raise ValueError(f"model.pools needs one (freq, time) pool per entry of "
                             f"model.channels: {len(self.channels)} channels, "
                             f"{len(self.pools)} pools")
        return self


def _encoder_block(in_channels: int, out_channels: int, kernel_size: int,
                   pool: tuple[int, int], dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(pool),
        nn.Dropout(dropout),
    )


class AudioCNN(nn.Module):
    """Log-mel spectrogram classifier: (B, n_mels, T) -> (B, num_classes) logits.

    Args:
        n_mels: number of mel bands of the input.
        num_classes: number of output logits.
        channels: output channels of each encoder block (the input has one channel).
        pools: (frequency, time) max-pool size of each block, one per entry of `channels`.
        kernel_size: square Conv2d kernel of the encoder blocks (odd keeps the size).
        dropout: dropout after each encoder block and after the hidden Linear.
        conv1d_channels: output channels of the Conv1d over the reduced frequency axis.
        conv1d_kernel_size: kernel of that Conv1d (odd keeps the size).
        hidden_size: width of the hidden Linear layer.
    """

    def __init__(self, n_mels: int = 64, num_classes: int = 10,
                 channels: Sequence[int] = (32, 64, 128),
                 pools: Sequence[Sequence[int]] = ((2, 2), (2, 2), (2, 4)),
                 kernel_size: int = 3, dropout: float = 0.3, conv1d_channels: int = 64,
                 conv1d_kernel_size: int = 3, hidden_size: int = 128):
        super().__init__()
        pools = [tuple(int(size) for size in pool) for pool in pools]
        if len(channels) != len(pools) or not channels:
            raise ValueError(f"AudioCNN needs one pool per encoder block: got {len(channels)} "
                             f"channels {list(channels)} and {len(pools)} pools {pools}.")
        if any(len(pool) != 2 for pool in pools):
            raise ValueError(f"Each pool is (frequency, time); got {pools}.")
        freq_out = n_mels
        for pool in pools:
            freq_out //= pool[0]
        if freq_out < 1:
            raise ValueError(f"n_mels={n_mels} is too small for frequency pools "
                             f"{[pool[0] for pool in pools]}: nothing is left after pooling.")
        self.n_mels = n_mels
        self.min_frames = 1
        for pool in pools:
            self.min_frames *= pool[1]

        in_channels = [1, *channels[:-1]]
        self.encoder = nn.Sequential(*(
            _encoder_block(cin, cout, kernel_size, pool, dropout)
            for cin, cout, pool in zip(in_channels, channels, pools, strict=True)))
        self.freq_conv = nn.Sequential(
            nn.Conv1d(channels[-1], conv1d_channels, conv1d_kernel_size,
                      padding=conv1d_kernel_size // 2),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(conv1d_channels * freq_out, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 3 or features.shape[1] != self.n_mels:
            raise ValueError(f"AudioCNN expects (batch, n_mels={self.n_mels}, frames); "
                             f"got {tuple(features.shape)}.")
        if features.shape[2] < self.min_frames:
            raise ValueError(f"AudioCNN needs at least {self.min_frames} frames (the product "
                             f"of the time pools); got {features.shape[2]}.")
        hidden = self.encoder(features.unsqueeze(1))  # (B, C, F', T')
        hidden = hidden.mean(dim=3)                   # (B, C, F')
        return self.head(self.freq_conv(hidden))


def build_cnn(config: Mapping[str, Any] | BaseModel) -> AudioCNN:
    """The AudioCNN of a `model:` section whose data sizes (n_mels, num_classes) are set, as
    an export embeds it."""
    model = validate_section(config, CNNConfig, "model")
    if model.n_mels is None or model.num_classes is None:
        raise ConfigError("model.n_mels and model.num_classes must be set to build the CNN "
                         "(the classifier solver fills them from the data)")
    return AudioCNN(**model.model_dump())
