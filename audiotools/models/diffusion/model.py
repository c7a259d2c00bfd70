"""`DiffusionModel`: a network (DiT, U-Net or ADP U-Net), its objective, and which conditions
feed which of its inputs; `build_diffusion_model`, the one builder training, export and
inference use.

The network is `model` (SAT's checkpoints hold the DiT under `model.model.`; here it is
`model.`). `forward(x, t, **inputs)` is the network's, so a DiffusionModel is itself the
`denoise(x, t, **cond)` callable audiotools.sampling takes, with `inputs` from
`condition_inputs(conditions)`. A diffusion autoencoder also holds its `encoder` and
`bottleneck` (the autoencoder family's modules), so one state dict rebuilds it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from ...conditioning import Conditioning
from ...errors import ConfigError
from ..autoencoder.bottlenecks import Bottleneck, BottleneckOutput, TanhBottleneck, VAEBottleneck
from ..autoencoder.oobleck import OobleckEncoder
from ..autoencoder.seanet import SEANetEncoder
from ..autoencoder.spectral import STFTEncoder
from .adp import ADPUNet
from .config import DiffusionEncoderConfig, DiffusionModelConfig, validate_diffusion_config
from .dit import DiffusionTransformer
from .objectives import get_objective
from .unet import UNet1d

# The module of each `network.type` (config.NETWORKS).
_NETWORKS: dict[str, type[nn.Module]] = {"dit": DiffusionTransformer, "unet": UNet1d,
                                         "adp_unet": ADPUNet}


def _pooled(condition: Conditioning) -> torch.Tensor:
    """(B, dim): the mean of a condition's real positions (its one token for a number; zeros
    for the null condition)."""
    weights = condition.mask.unsqueeze(-1).to(condition.embeddings.dtype)
    return (condition.embeddings * weights).sum(1) / weights.sum(1).clamp_min(1)


_ENCODERS: dict[str, type[nn.Module]] = {"oobleck": OobleckEncoder, "seanet": SEANetEncoder,
                                         "stft": STFTEncoder}


def _encoder_parts(config: DiffusionEncoderConfig,
                   in_channels: int) -> tuple[nn.Module, Bottleneck]:
    """The autoencoder family's encoder network (called as its own builder calls it) and
    bottleneck, for data of `in_channels` channels."""
    section = config.encoder
    network = _ENCODERS[section.type](in_channels, config.bottleneck.input_dim(config.latent_dim),
                                      **section.model_dump(exclude={"type", "latent_dim"}))
    bottleneck = config.bottleneck
    if bottleneck.type == "vae":
        return network, VAEBottleneck()
    if bottleneck.type == "tanh":
        return network, TanhBottleneck(bottleneck)
    return network, Bottleneck()


class DiffusionModel(nn.Module):
    def __init__(self, config: DiffusionModelConfig):
        super().__init__()
        self.config = config
        self.objective = get_objective(config.objective)
        self.io_channels = config.io_channels
        network = config.network
        self.model: nn.Module = _NETWORKS[network.type](network)
        if config.encoder is not None:
            self.encoder, self.bottleneck = _encoder_parts(config.encoder, self.io_channels)
            with torch.no_grad():
                for parameter in self.encoder.parameters():
                    parameter.mul_(config.encoder.init_scale)

    def encode(self, x: torch.Tensor) -> BottleneckOutput:
        """A diffusion autoencoder's latents (B, latent_dim, ceil(T / hop)) of data x
        (B, io_channels, T), right-padded to a whole number of latent frames; in training the
        bottleneck samples and gives its losses (the VAE's `kl`)."""
        if self.config.encoder is None:
            raise ConfigError("this diffusion model has no encoder (model.encoder is null): "
                              "only a diffusion autoencoder encodes")
        hop = self.config.encoder.hop_length
        return self.bottleneck(self.encoder(F.pad(x, (0, -x.shape[-1] % hop))))

    @property
    def length_multiple(self) -> int:
        """Input lengths must be multiples of this (patching, U-Net downsampling, a diffusion
        autoencoder's encoder hop)."""
        return self.config.length_multiple

    def _pick(self, conditions: Mapping[str, Conditioning], ids: list[str],
              role: str) -> list[Conditioning]:
        missing = [name for name in ids if name not in conditions]
        if missing:
            raise ConfigError(f"model.{role} name {', '.join(map(repr, missing))}, which the "
                              f"conditions lack; they have: {', '.join(conditions) or 'none'}")
        return [conditions[name] for name in ids]

    def condition_inputs(self, conditions: Mapping[str, Conditioning]) -> dict[str, torch.Tensor]:
        """The network's keyword inputs from a ConditionerSet's output: cross-attention tokens
        and mask concatenated along the sequence; global vectors (each condition pooled over
        its real positions) along the features; prepended tokens along the sequence; input
        concat conditions (B, T, dim) as channels (B, dim, T)."""
        config = self.config
        inputs: dict[str, torch.Tensor] = {}
        if config.cross_attention_cond_ids:
            parts = self._pick(conditions, config.cross_attention_cond_ids,
                               "cross_attention_cond_ids")
            inputs["cross_attn_cond"] = torch.cat([part.embeddings for part in parts], dim=1)
            inputs["cross_attn_mask"] = torch.cat([part.mask for part in parts], dim=1)
        if config.global_cond_ids:
            parts = self._pick(conditions, config.global_cond_ids, "global_cond_ids")
            inputs["global_cond"] = torch.cat([_pooled(part) for part in parts], dim=-1)
        if config.prepend_cond_ids:
            parts = self._pick(conditions, config.prepend_cond_ids, "prepend_cond_ids")
            inputs["prepend_cond"] = torch.cat([part.embeddings for part in parts], dim=1)
            inputs["prepend_cond_mask"] = torch.cat([part.mask for part in parts], dim=1)
        if config.input_concat_ids:
            parts = self._pick(conditions, config.input_concat_ids, "input_concat_ids")
            inputs["input_concat_cond"] = torch.cat(
                [part.embeddings.transpose(1, 2) for part in parts], dim=1)
        return inputs

    def check_conditioner_dim(self, dim: int) -> None:
        """ConfigError unless conditioners of width `dim` (and the model's own conditions)
        fill the network's inputs exactly."""
        wrong = self.config.width_faults(dim)
        if wrong:
            raise ConfigError(f"conditioners of width {dim} do not fit the diffusion network: "
                              f"{'; '.join(wrong)}")

    def forward(self, x: torch.Tensor, t: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        output = self.model(x, t, **inputs)
        if output.shape != x.shape:  # a network of a researcher's own, or a broken one
            raise ConfigError(f"the diffusion network ({self.config.network.type}) returned "
                              f"{tuple(output.shape)} for an input of {tuple(x.shape)}: it "
                              "predicts one value per input value.")
        return output


def build_diffusion_model(config: Mapping[str, Any] | BaseModel) -> DiffusionModel:
    """The diffusion model of a `model:` section (a mapping or a validated config).

    Raises ConfigError naming every invalid key (an unknown network type lists the valid
    ones)."""
    return DiffusionModel(validate_diffusion_config(config))
