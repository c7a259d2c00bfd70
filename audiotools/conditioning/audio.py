"""`audio`: a reference clip through a codec, its latent frames projected to dim.

The value is either audio in memory, a tensor (channels, samples) or (samples,) at the codec's
sample rate, or the path of an audio file (read, resampled and channel-converted to the
codec's; a relative path is taken from the item's own folder, as manifest paths are). The clip
is cut or zero-padded to `seconds`; frames that cover padding only are masked. The codec is the
model's (audiotools.models.codec.Codec): frozen, never trained here, kept out of this module's
parameters and state dict.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data.audio import AudioFileError, audio_read
from ..environment import resolve_path
from ..errors import ConfigError
from .base import Conditioner, Conditioning, masked
from .config import AudioConditionerConfig
from .values import MissingValue, item_name, lookup, missing_error

if TYPE_CHECKING:
    from ..models.codec import Codec


class AudioConditioner(Conditioner):
    config: AudioConditionerConfig

    def __init__(self, name: str, config: AudioConditionerConfig, dim: int, codec: Codec):
        super().__init__(name, config, dim)
        self.__dict__["codec"] = codec
        self.samples = round(config.seconds * codec.sample_rate)
        self.hop = codec.sample_rate / codec.frame_rate
        self.length = math.ceil(self.samples / self.hop)
        self.proj = nn.Linear(codec.latent_dim, dim)

    def item_value(self, info: Mapping[str, Any]) -> Any:
        """A clip in the item's info, or the path of one: relative to the item's folder when
        its metadata gives it, to the working directory for `default`."""
        try:
            value = lookup(info, self.key)
        except MissingValue as missing:
            if self.config.default is None:
                raise missing_error(self.name, info, missing.key) from None
            return resolve_path(self.config.default)
        if isinstance(value, str) and not value.startswith(("/", "~")) and "path" in info:
            return Path(info["path"]).parent / value
        return resolve_path(value) if isinstance(value, str) else value

    def check_item(self, info: Mapping[str, Any]) -> None:
        """The item's clip is a file (reading every clip would cost what training does)."""
        value = self.item_value(info)
        if isinstance(value, str | Path) and not Path(value).is_file():
            raise ConfigError(f"conditioner {self.name!r}: item {item_name(info)} ({self.key}) "
                              f"names {value}, which is not a file.")

    def prepare(self, value: Any, where: str) -> torch.Tensor:
        """The clip as (channels, samples) at the codec's rate, cut to `seconds`."""
        codec = self.codec
        if isinstance(value, str | Path):
            try:
                value, _ = audio_read(resolve_path(value), 0.0, self.config.seconds,
                                      codec.sample_rate, codec.channels)
            except AudioFileError as err:
                raise ConfigError(f"conditioner {self.name!r}: {where}: {err}") from None
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"conditioner {self.name!r}: {where} holds {type(value).__name__}; "
                              "expected an audio file path or a tensor (channels, samples).")
        clip = value.unsqueeze(0) if value.dim() == 1 else value
        if clip.dim() != 2 or clip.shape[0] != codec.channels or clip.shape[1] == 0:
            raise ConfigError(f"conditioner {self.name!r}: {where} holds audio of shape "
                              f"{tuple(value.shape)}; expected (channels={codec.channels}, "
                              f"samples > 0) at {codec.sample_rate} Hz.")
        return clip[:, :self.samples].float()

    def embed(self, values: Sequence[torch.Tensor]) -> Conditioning:
        codec = self.codec
        device = self.device
        if isinstance(codec, nn.Module):
            codec.to(device)
        audio = torch.zeros(len(values), codec.channels, self.samples, device=device)
        frames = torch.arange(self.length, device=device)
        lengths = []
        for row, clip in enumerate(values):
            audio[row, :, :clip.shape[-1]] = clip.to(device)
            lengths.append(math.ceil(clip.shape[-1] / self.hop))
        with torch.no_grad():
            latents = codec.encode(audio)
        if latents.shape[1:] != (codec.latent_dim, self.length):
            raise ValueError(f"codec gave latents {tuple(latents.shape)} for {self.samples} "
                             f"samples; expected (B, {codec.latent_dim}, {self.length})")
        mask = frames < torch.tensor(lengths, device=device).unsqueeze(1)
        return masked(self.proj(latents.transpose(1, 2).float()), mask)

