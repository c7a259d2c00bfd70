"""The codec interface the generative families build on, and a frozen codec in use.

A codec turns audio into latents (diffusion's pretransform) or tokens (the LM's tokenizer) and
back. audiotools' autoencoders implement it, and so does any stable-audio-tools autoencoder
once converted (`audiotools.load` of its checkpoint). A `FrozenCodec` is a codec as a model
uses it: never trained, always in eval mode, its latents scaled (stable-audio-tools'
`pretransform.scale`) and optionally normalised per channel with statistics measured on the
training data, and identified by a hash of its weights so that a checkpoint can refuse a
codec that changed.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import ConfigError
from .autoencoder.chunking import window_frames


@runtime_checkable
class Codec(Protocol):
    """Continuous latents: audio (B, channels, T) <-> latents (B, latent_dim, frames)."""

    sample_rate: int
    channels: int
    frame_rate: float
    latent_dim: int

    def encode(self, audio: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class DiscreteCodec(Codec, Protocol):
    """Tokens: audio <-> (B, num_codebooks, frames) int64 in [0, cardinality)."""

    num_codebooks: int
    cardinality: int

    def encode_to_tokens(self, audio: torch.Tensor) -> torch.Tensor: ...

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor: ...


def is_discrete(codec: Any) -> bool:
    """Whether `codec` has tokens (an autoencoder with a VQ bottleneck, say)."""
    return getattr(codec, "num_codebooks", None) is not None


def weights_identity(module: nn.Module) -> str:
    """sha256 of a module's state (names, shapes, dtypes and values): what "the same codec"
    means when a checkpoint is resumed or pre-encoded data is read."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


@dataclass
class LatentStats:
    """Per-channel mean and standard deviation of a codec's latents on training data."""

    mean: list[float]
    std: list[float]

    @classmethod
    def measure(cls, latents: Iterable[torch.Tensor]) -> LatentStats:
        """From latents (latent_dim, frames) of many clips, every frame weighing the same.

        The clips are merged one at a time in float64 (Chan et al.'s pairwise update of the
        count, mean and sum of squared deviations), so that a training split of any size
        (pre-encode reads them file by file) never has to be held at once."""
        count, mean, squares = 0, torch.zeros(()), torch.zeros(())
        for item in latents:
            frames = item.double().flatten(1)
            size = frames.shape[1]
            if size == 0:
                continue
            item_mean = frames.mean(dim=1)
            item_squares = (frames - item_mean[:, None]).square().sum(dim=1)
            total = count + size
            delta = item_mean - mean
            mean = mean + delta * (size / total)
            squares = squares + item_squares + delta.square() * (count * size / total)
            count = total
        if count < 2:
            raise ConfigError(f"The codec's latent statistics need at least 2 latent frames of "
                              f"training audio; the train split gave {count}.")
        std = (squares / (count - 1)).sqrt().clamp_min(1e-5)
        return cls(mean.tolist(), std.tolist())


class FrozenCodec(nn.Module):
    """A codec as a generative model uses it: eval mode whatever `train()` asks, no gradients,
    latents = (codec latents - mean) / std / scale (and back for decoding)."""

    def __init__(self, codec: nn.Module, source: str, scale: float = 1.0,
                 stats: LatentStats | None = None):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"codec scale={scale} must be > 0")
        self.codec = codec.eval().requires_grad_(False)
        self.source = source
        self.scale = scale
        self.stats = stats
        self.identity = weights_identity(codec)
        dim = codec.latent_dim
        mean = torch.tensor(stats.mean if stats else [0.0] * dim)
        std = torch.tensor(stats.std if stats else [1.0] * dim)
        if len(mean) != dim or len(std) != dim:
            raise ValueError(f"latent statistics have {len(mean)} channels, the codec {dim}")
        self.register_buffer("mean", mean.view(1, dim, 1), persistent=False)
        self.register_buffer("std", std.view(1, dim, 1), persistent=False)

    def train(self, mode: bool = True) -> FrozenCodec:
        return super().train(False)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def channels(self) -> int:
        return self.codec.channels

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def latent_dim(self) -> int:
        return self.codec.latent_dim

    @property
    def num_codebooks(self) -> int | None:
        return getattr(self.codec, "num_codebooks", None)

    @property
    def cardinality(self) -> int | None:
        return getattr(self.codec, "cardinality", None)

    def _chunking(self, chunk_seconds: float | None) -> dict[str, int]:
        if chunk_seconds is None:
            return {}
        return {"chunk_frames": window_frames(chunk_seconds, self.frame_rate)}

    @torch.no_grad()
    def encode_raw(self, audio: torch.Tensor, chunk_seconds: float | None = None,
                   ) -> torch.Tensor:
        """The codec's own latents, before scale and statistics (what pre-encoding stores);
        long audio in windows of `chunk_seconds`."""
        return self.codec.encode(audio, **self._chunking(chunk_seconds))

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latents (B, latent_dim, frames) as the model sees them."""
        return (raw - self.mean) / self.std / self.scale

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.encode_raw(audio))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents * self.scale * self.std + self.mean)

    @torch.no_grad()
    def encode_to_tokens(self, audio: torch.Tensor, chunk_seconds: float | None = None,
                         ) -> torch.Tensor:
        return self.codec.encode_to_tokens(audio, **self._chunking(chunk_seconds))

    @torch.no_grad()
    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.codec.decode_tokens(tokens)

    def describe(self) -> dict[str, Any]:
        """What identifies this codec as used: recorded in checkpoints and pre-encoded data."""
        return {"source": self.source, "identity": self.identity, "scale": self.scale,
                "stats": asdict(self.stats) if self.stats else None,
                "sample_rate": self.sample_rate, "channels": self.channels,
                "frame_rate": self.frame_rate, "latent_dim": self.latent_dim,
                "num_codebooks": self.num_codebooks, "cardinality": self.cardinality}
