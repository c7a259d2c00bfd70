"""The autoencoder family's pipeline: reconstruct, encode and decode clips of any sample rate
and channel count (converted to the model's on the way in, and back on the way out)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from ..data.audio import StreamResampler, convert_audio, convert_channels, converted_blocks
from ..errors import ConfigError
from ..io.export import Export
from ..models.autoencoder import AudioAutoencoder
from ..models.autoencoder.chunking import window_frames
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
        return _cut_or_padded(back, audio.shape[-1]), rate

    def reconstruct_blocks(self, blocks: Iterable[torch.Tensor], sample_rate: int,
                           chunk_seconds: float = 10.0, keep_format: bool = True,
                           ) -> Iterator[torch.Tensor]:
        """`reconstruct` of a clip given as consecutive blocks (channels, samples) at
        `sample_rate` (a long file read block by block), yielded as its windows complete:
        the blocks joined equal `reconstruct(whole clip, ...)` to float rounding, and memory
        stays a couple of windows' (`chunk_seconds`) whatever the length. The settings are checked
        here, the blocks as they come."""
        checked_seconds(chunk_seconds, "chunk_seconds", "a window in seconds")
        window_frames(chunk_seconds, self.model.frame_rate)
        return self._reconstructed_blocks(blocks, checked_rate(sample_rate), chunk_seconds,
                                          keep_format)

    def _reconstructed_blocks(self, blocks: Iterable[torch.Tensor], rate: int,
                              chunk_seconds: float, keep_format: bool,
                              ) -> Iterator[torch.Tensor]:
        back = StreamResampler(self.sample_rate, rate) if keep_format else None
        stream = self.model.streamed_reconstruction(chunk_seconds)
        given = 0
        seen = {"channels": 0, "samples": 0}  # of the input blocks, as they come

        def checked(blocks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
            for block in blocks:
                block, _ = checked_clip(block, rate)
                if seen["channels"] and block.shape[0] != seen["channels"]:
                    raise ConfigError(f"audio: a block of {block.shape[0]} channels after "
                                      f"blocks of {seen['channels']}.")
                seen["channels"] = block.shape[0]
                seen["samples"] += block.shape[-1]
                yield block

        def out(audio: torch.Tensor) -> torch.Tensor:
            audio = audio[0].cpu()
            return audio if back is None else back.push(convert_channels(audio,
                                                                         seen["channels"]))

        for model_in in converted_blocks(checked(blocks), rate, self.sample_rate,
                                         self.channels):
            piece = out(stream.push(model_in[None].to(self.device)))
            if back is not None:  # the input's length, at its end (the output lags it)
                piece = piece[..., :seen["samples"] - given]
            given += piece.shape[-1]
            yield piece
        if not seen["channels"]:
            raise ConfigError("audio: no block holds samples.")
        pieces = [out(stream.finish())]
        if back is not None:
            pieces.append(back.finish())
            pieces = [_cut_or_padded(torch.cat(pieces, dim=-1), seen["samples"] - given)]
        yield from pieces


def _cut_or_padded(audio: torch.Tensor, length: int) -> torch.Tensor:
    """`audio` of exactly `length` samples: resampling there and back rounds the length up
    each way (16001 samples at 44.1 kHz came back 16003), and a clip keeps its own."""
    return torch.nn.functional.pad(audio[..., :length], (0, max(0, length - audio.shape[-1])))

