"""The autoencoder family's pipeline: reconstruct, encode and decode clips of any sample rate
and channel count (converted to the model's on the way in, and back on the way out)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.audio import convert_audio
from ..errors import ConfigError
from ..io.export import Export
from ..models.autoencoder import AudioAutoencoder
from .inputs import checked_clip, checked_latents, checked_rate, checked_seconds


@dataclass
class AutoencoderPipeline:
    model: AudioAutoencoder
    export: Export

    @classmethod
    def from_model(cls, model: torch.nn.Module, export: Export) -> AutoencoderPipeline:
        if not isinstance(model, AudioAutoencoder):
            raise ConfigError(f"{export.label}: expected an autoencoder, got "
                              f"{type(model).__name__}.")
        return cls(model, export)

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def channels(self) -> int:
        return self.model.channels

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _to_model(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        audio, sample_rate = checked_clip(audio, sample_rate)
        converted = convert_audio(audio, sample_rate, self.sample_rate, self.channels)
        return converted[None].to(self.device)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Latents (latent_dim, frames) of a clip (channels, samples) at `sample_rate`."""
        return self.model.encode(self._to_model(audio, sample_rate))[0]

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Audio (channels, samples) at the model's sample rate from (latent_dim, frames)."""
        latents = checked_latents(latents, self.model.latent_dim)
        return self.model.decode(latents[None].to(self.device))[0].cpu()

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, sample_rate: int,
                    chunk_seconds: float | None = 10.0, keep_format: bool = True,
                    ) -> tuple[torch.Tensor, int]:
        """(audio, its sample rate) after encoding and decoding a clip (channels, samples):
        at the input's rate and channel count (`keep_format`), else the model's. Long clips go
        through in overlapping windows of `chunk_seconds` (None: at once)."""
        if chunk_seconds is not None:
            checked_seconds(chunk_seconds, "chunk_seconds", "a window in seconds (None: at once)")
        output = self.model.reconstruct(self._to_model(audio, sample_rate),
                                        chunk_seconds=chunk_seconds)[0].cpu()
        if not keep_format:
            return output, self.sample_rate
        rate = checked_rate(sample_rate)  # as _to_model checked it, with the clip
        back = convert_audio(output, self.sample_rate, rate, audio.shape[0])
        # Two resamplings round the length up each way (16001 samples at 44.1 kHz came back
        # 16003): the clip keeps its own length.
        length = audio.shape[-1]
        back = torch.nn.functional.pad(back[..., :length], (0, max(0, length - back.shape[-1])))
        return back, rate
