"""`AudioAutoencoder`: encoder -> bottleneck -> decoder, and `build_autoencoder`, the one
registry training, export and inference build autoencoders with.

Audio is (batch, channels, samples); latents are (batch, latent_dim, frames) with one frame
per `hop_length` samples; tokens are (batch, num_codebooks, frames). Submodule names
(`encoder`, `bottleneck`, `decoder`) are stable-audio-tools' so its state dicts map by key.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from ...errors import ConfigError
from .bottlenecks import (
    Bottleneck,
    FSQBottleneck,
    QuantizedBottleneck,
    RVQBottleneck,
    TanhBottleneck,
    VAEBottleneck,
)
from .chunking import DEFAULT_OVERLAP_FRAMES, StreamChunked, run_chunked, window_frames
from .config import AutoencoderConfig, validate_autoencoder_config
from .oobleck import OobleckDecoder, OobleckEncoder
from .seanet import SEANetDecoder, SEANetEncoder
from .spectral import ISTFTDecoder, STFTEncoder


@dataclass
class AutoencoderOutput:
    audio: torch.Tensor                 # reconstruction, same shape as the input
    latents: torch.Tensor               # what the decoder read (B, latent_dim, frames)
    losses: dict[str, torch.Tensor]     # unweighted bottleneck terms ("kl", "commitment")
    metrics: dict[str, torch.Tensor]    # e.g. "bandwidth_kbps", "codebook_usage"


def _settings(section: BaseModel) -> dict[str, Any]:
    """A network section's constructor arguments (its keys minus type and latent_dim)."""
    return section.model_dump(exclude={"type", "latent_dim"})


def _build_encoder(config: AutoencoderConfig) -> nn.Module:
    network = {"oobleck": OobleckEncoder, "seanet": SEANetEncoder,
               "stft": STFTEncoder}[config.encoder.type]
    return network(config.network_channels, config.encoder_dim, **_settings(config.encoder))


def _build_decoder(config: AutoencoderConfig) -> nn.Module:
    network = {"oobleck": OobleckDecoder, "seanet": SEANetDecoder,
               "istft": ISTFTDecoder}[config.decoder.type]
    return network(config.network_channels, config.latent_dim, **_settings(config.decoder))


def _build_bottleneck(config: AutoencoderConfig) -> Bottleneck:
    section = config.bottleneck
    if section.type == "vae":
        return VAEBottleneck()
    if section.type == "tanh":
        return TanhBottleneck(section)
    if section.type == "rvq":
        return RVQBottleneck(section, config.latent_dim)
    if section.type == "fsq":
        return FSQBottleneck(section, config.latent_dim)
    return Bottleneck()


class AudioAutoencoder(nn.Module):
    """Audio autoencoder built from a validated `model:` section (see `build_autoencoder`)."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.channels = config.channels
        self.latent_dim = config.latent_dim
        self.hop_length = config.hop_length
        self.patch_size = config.patch_size
        self.frame_rate = config.sample_rate / config.hop_length
        self.encoder = _build_encoder(config)
        self.bottleneck = _build_bottleneck(config)
        self.decoder = _build_decoder(config)
        self.is_quantized = isinstance(self.bottleneck, QuantizedBottleneck)
        self.num_codebooks: int | None = None
        self.codebook_size: int | None = None
        self.bitrate: float | None = None  # bits per second with every codebook
        if isinstance(self.bottleneck, QuantizedBottleneck):
            self.num_codebooks = self.bottleneck.num_codebooks
            self.codebook_size = self.bottleneck.codebook_size
            self.bitrate = self._bits_per_second(self.num_codebooks)

    @property
    def cardinality(self) -> int | None:
        """Codes per codebook (the codec interface's name for `codebook_size`)."""
        return self.codebook_size

    def _bits_per_second(self, codebooks: int) -> float:
        assert self.codebook_size is not None
        return codebooks * math.log2(self.codebook_size) * self.frame_rate

    def _padded(self, audio: torch.Tensor) -> torch.Tensor:
        """Check (B, channels, T) and right-pad T with zeros to a multiple of hop_length."""
        if audio.dim() != 3 or audio.shape[1] != self.channels or audio.shape[-1] == 0:
            raise ValueError(f"Expected audio (batch, channels={self.channels}, samples > 0); "
                             f"got shape {tuple(audio.shape)}.")
        return F.pad(audio, (0, -audio.shape[-1] % self.hop_length))

    def _encode_features(self, audio: torch.Tensor) -> torch.Tensor:
        """Encoder output of padded audio: (B, C, T) -> (B, C x P, T / P) -> encoder."""
        if self.patch_size > 1:
            batch, channels, length = audio.shape
            audio = (audio.reshape(batch, channels, length // self.patch_size, self.patch_size)
                     .transpose(2, 3).reshape(batch, channels * self.patch_size, -1))
        return self.encoder(audio)

    def _decode_features(self, latents: torch.Tensor) -> torch.Tensor:
        """Decoder output unfolded back to audio: (B, C x P, T / P) -> (B, C, T)."""
        output = self.decoder(latents)
        if self.patch_size > 1:
            batch, _, frames = output.shape
            output = (output.reshape(batch, self.channels, self.patch_size, frames)
                      .transpose(2, 3).reshape(batch, self.channels, -1))
        return output

    def forward(self, audio: torch.Tensor) -> AutoencoderOutput:
        """Reconstruct `audio` (training path: VAE sampling and quantizer dropout in train)."""
        bottleneck = self.bottleneck(self._encode_features(self._padded(audio)))
        reconstruction = self._decode_features(bottleneck.latents)[..., :audio.shape[-1]]
        metrics = dict(bottleneck.metrics)
        if bottleneck.active_codebooks is not None:
            kbps = self._bits_per_second(bottleneck.active_codebooks) / 1000
            metrics["bandwidth_kbps"] = torch.tensor(kbps)
        return AutoencoderOutput(reconstruction, bottleneck.latents, bottleneck.losses, metrics)

    def _features(self, audio: torch.Tensor, chunk_frames: int | None,
                  overlap_frames: int) -> torch.Tensor:
        """Encoder output before the bottleneck (every bottleneck acts frame by frame, so
        chunking the encoder alone is enough)."""
        padded = self._padded(audio)
        if chunk_frames is None:
            return self._encode_features(padded)
        return run_chunked(self._encode_features, padded, chunk_frames, overlap_frames,
                           in_per_frame=self.hop_length, out_per_frame=1)

    def encode(self, audio: torch.Tensor, sample: bool = False, chunk_frames: int | None = None,
               overlap_frames: int = DEFAULT_OVERLAP_FRAMES) -> torch.Tensor:
        """Latents (B, latent_dim, ceil(T / hop_length)); the VAE mean unless `sample`.

        `chunk_frames` encodes in windows of that many frames sharing `overlap_frames`."""
        features = self._features(audio, chunk_frames, overlap_frames)
        return self.bottleneck.encode(features, sample=sample)

    def decode(self, latents: torch.Tensor, chunk_frames: int | None = None,
               overlap_frames: int = DEFAULT_OVERLAP_FRAMES) -> torch.Tensor:
        """Audio (B, channels, frames x hop_length) from latents (B, latent_dim, frames)."""
        if latents.dim() != 3 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"Expected latents (batch, latent_dim={self.latent_dim}, frames); "
                             f"got shape {tuple(latents.shape)}.")
        if chunk_frames is None:
            return self._decode_features(latents)
        return run_chunked(self._decode_features, latents, chunk_frames, overlap_frames,
                           in_per_frame=1, out_per_frame=self.hop_length)

    def _quantizer(self, method: str) -> QuantizedBottleneck:
        if not isinstance(self.bottleneck, QuantizedBottleneck):
            raise ConfigError(
                f"{method} needs a quantized bottleneck (model.bottleneck.type rvq or fsq); "
                f"this model's is {self.config.bottleneck.type!r}, whose latents are continuous: "
                "use encode/decode.")
        return self.bottleneck

    def encode_to_tokens(self, audio: torch.Tensor, chunk_frames: int | None = None,
                         overlap_frames: int = DEFAULT_OVERLAP_FRAMES) -> torch.Tensor:
        """Codes (B, num_codebooks, frames) as int64."""
        quantizer = self._quantizer("encode_to_tokens")
        return quantizer.encode_tokens(self._features(audio, chunk_frames, overlap_frames))

    def decode_tokens(self, tokens: torch.Tensor, chunk_frames: int | None = None,
                      overlap_frames: int = DEFAULT_OVERLAP_FRAMES) -> torch.Tensor:
        """Audio from codes (B, K, frames); an RVQ model also takes its first K < num_codebooks."""
        latents = self._quantizer("decode_tokens").decode_tokens(tokens)
        return self.decode(latents, chunk_frames, overlap_frames)

    def streamed_encoding(self, chunk_seconds: float, tokens: bool = False,
                          ) -> StreamedEncoding:
        """`encode(audio, chunk_frames=...)` (`tokens`: `encode_to_tokens`) of the windows
        `chunk_seconds` gives, for audio that comes piece by piece."""
        return StreamedEncoding(self, window_frames(chunk_seconds, self.frame_rate), tokens)

    def streamed_reconstruction(self, chunk_seconds: float) -> StreamedReconstruction:
        """`reconstruct(audio, chunk_seconds)` of audio that comes piece by piece (a long
        file read block by block)."""
        return StreamedReconstruction(self, window_frames(chunk_seconds, self.frame_rate))

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, chunk_seconds: float | None = None) -> torch.Tensor:
        """Encode (deterministically) and decode audio of any length; same shape out; no
        gradients (an inference method: training calls forward).

        `chunk_seconds` bounds memory on long audio: windows of that duration overlapping by
        DEFAULT_OVERLAP_FRAMES (at least twice that long)."""
        chunk_frames = (None if chunk_seconds is None
                        else window_frames(chunk_seconds, self.frame_rate))
        latents = self.encode(audio, chunk_frames=chunk_frames)
        return self.decode(latents, chunk_frames)[..., :audio.shape[-1]]


class StreamedEncoding:
    """`AudioAutoencoder.encode` (or `encode_to_tokens`) in windows of audio given in
    consecutive pieces (B, channels, samples): each piece gives back the latents (B, latent_dim,
    frames) or codes (B, K, frames) its windows complete, joined equal to the whole audio's
    with the same `chunk_frames`; memory stays a couple of windows' whatever the length."""

    def __init__(self, model: AudioAutoencoder, chunk_frames: int, tokens: bool = False):
        self._model = model
        self._quantizer = model._quantizer("encode_to_tokens") if tokens else None
        self._features = StreamChunked(model._encode_features, chunk_frames,
                                       DEFAULT_OVERLAP_FRAMES, model.hop_length, 1)
        self._empty: torch.Tensor | None = None  # (B, channels, 0), once a piece came
        self.received = 0  # samples

    @torch.no_grad()
    def push(self, audio: torch.Tensor) -> torch.Tensor:
        self._empty = audio[..., :0]
        self.received += audio.shape[-1]
        return self._encoded(self._features.push(audio))

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """The rest once the audio has ended (zero-padded to whole frames, as `encode` pads)."""
        if self._empty is None or self.received == 0:
            raise ValueError("no audio was given to encode")
        padding = self._empty.new_zeros(*self._empty.shape[:-1],
                                        -self.received % self._model.hop_length)
        return self._encoded([*self._features.push(padding), *self._features.finish()])

    def _encoded(self, features: list[torch.Tensor]) -> torch.Tensor:
        assert self._empty is not None
        if not features:
            width = (self._model.num_codebooks if self._quantizer is not None
                     else self._model.latent_dim)
            return self._empty.new_zeros(self._empty.shape[0], width, 0,
                                         dtype=torch.long if self._quantizer else None)
        features = torch.cat(features, dim=-1)
        if self._quantizer is not None:
            return self._quantizer.encode_tokens(features)
        return self._model.bottleneck.encode(features, sample=False)


class StreamedReconstruction:
    """`AudioAutoencoder.reconstruct` in windows of audio given in consecutive pieces
    (B, channels, samples): each piece gives back the reconstruction its windows complete,
    and the pieces joined equal `reconstruct(whole, chunk_seconds)`; memory stays a couple of
    windows' whatever the length."""

    def __init__(self, model: AudioAutoencoder, chunk_frames: int):
        self._encoding = StreamedEncoding(model, chunk_frames)
        self._decoder = StreamChunked(model._decode_features, chunk_frames,
                                      DEFAULT_OVERLAP_FRAMES, 1, model.hop_length)
        self._empty: torch.Tensor | None = None  # (B, channels, 0), once a piece came
        self._given = 0

    @torch.no_grad()
    def push(self, audio: torch.Tensor) -> torch.Tensor:
        self._empty = audio[..., :0]
        return self._decoded(self._encoding.push(audio), last=False)

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """The rest once the audio has ended."""
        return self._decoded(self._encoding.finish(), last=True)

    def _decoded(self, latents: torch.Tensor, last: bool) -> torch.Tensor:
        audio = self._decoder.push(latents) if latents.shape[-1] else []
        if last:
            audio = [*audio, *self._decoder.finish()]
        assert self._empty is not None
        wanted = self._encoding.received - self._given
        out = torch.cat([self._empty, *audio], dim=-1)[..., :wanted]
        self._given += out.shape[-1]
        return out


def build_autoencoder(config: Mapping[str, Any] | BaseModel) -> AudioAutoencoder:
    """The autoencoder of a `model:` section (a mapping or a validated AutoencoderConfig).

    Raises ConfigError naming every invalid key (an unknown encoder, decoder or bottleneck
    type lists the valid ones)."""
    return AudioAutoencoder(validate_autoencoder_config(config))
