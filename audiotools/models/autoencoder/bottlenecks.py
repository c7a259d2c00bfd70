"""Bottlenecks between encoder and decoder: (B, input_dim, frames) -> (B, latent_dim, frames).

`forward` is the training path (VAE sampling and RVQ quantizer dropout only in training mode,
regularisation terms returned unweighted); `encode` is the deterministic inference path.
Quantized bottlenecks also map to and from tokens (B, num_codebooks, frames).
Parameter and buffer names follow stable-audio-tools (`quantizer.*` from vector-quantize-pytorch).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import (
    FSQBottleneckConfig,
    RVQBottleneckConfig,
    TanhBottleneckConfig,
)


@dataclass
class BottleneckOutput:
    latents: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    # Codebooks that produced `latents` (fewer than all under quantizer dropout).
    active_codebooks: int | None = None


class Bottleneck(nn.Module):
    """Identity: the encoder output is the latent (`type: none`)."""

    def forward(self, x: torch.Tensor) -> BottleneckOutput:
        return BottleneckOutput(self.encode(x))

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        return x


class TanhBottleneck(Bottleneck):
    """latents = scale * tanh(x / scale): bounded latents without a regulariser."""

    def __init__(self, config: TanhBottleneckConfig):
        super().__init__()
        self.scale = config.scale

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        return self.scale * torch.tanh(x / self.scale)


def _noise_like(x: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of x's shape in a contiguous tensor: torch.randn_like keeps a
    transposed x's strides, and CPU normal_ fills a non-contiguous tensor element by element
    (2.1 against 0.27 ms for one batch of autoencoder/base's latents)."""
    return torch.randn(x.shape, dtype=x.dtype, device=x.device)


class VAEBottleneck(Bottleneck):
    """Splits the encoder output into mean and scale; std = softplus(scale) + 1e-4.

    The KL term is stable-audio-tools': sum over latent channels of
    mean^2 + var - log var - 1 (no 1/2 factor), averaged over batch and frames, so KL weights
    from its configs carry over. Training samples the latents; eval uses the mean.
    """

    @staticmethod
    def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, scale = x.float().chunk(2, dim=1)
        return mean, F.softplus(scale) + 1e-4

    def forward(self, x: torch.Tensor) -> BottleneckOutput:
        mean, std = self._split(x)
        var = std * std
        kl = (mean * mean + var - torch.log(var) - 1).sum(dim=1).mean()
        latents = mean + std * _noise_like(mean) if self.training else mean
        return BottleneckOutput(latents.to(x.dtype), losses={"kl": kl})

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        mean, std = self._split(x)
        latents = mean + std * _noise_like(mean) if sample else mean
        return latents.to(x.dtype)


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Mean over codebooks of the fraction of codes used; indices (B, K, frames)."""
    used = [torch.unique(indices[:, k]).numel() for k in range(indices.shape[1])]
    return torch.tensor(sum(used) / (len(used) * codebook_size))


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Run `module` as in evaluation (no codebook updates, no dropout), then restore."""
    modes = [(child, child.training) for child in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for child, mode in modes:
            child.training = mode


class QuantizedBottleneck(Bottleneck):
    """A bottleneck with discrete codes: `num_codebooks` indices in [0, codebook_size) a frame."""

    num_codebooks: int
    codebook_size: int

    def encode_tokens(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dead_codes(self) -> list[int] | None:
        """Per codebook, the codes training counts as dead (None: no such notion)."""
        return None

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        return self.decode_tokens(self.encode_tokens(x))

    def _check_tokens(self, tokens: torch.Tensor, min_codebooks: int) -> None:
        wanted = (str(self.num_codebooks) if min_codebooks == self.num_codebooks
                  else f"{min_codebooks} to {self.num_codebooks}")
        if tokens.dim() != 3 or not min_codebooks <= tokens.shape[1] <= self.num_codebooks:
            raise ValueError(f"tokens must be (batch, codebooks, frames) with {wanted} "
                             f"codebooks; got shape {tuple(tokens.shape)}.")
        if tokens.dtype.is_floating_point:
            raise ValueError(f"tokens must be integers; got {tokens.dtype}.")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.codebook_size):
            raise ValueError(f"tokens must lie in [0, {self.codebook_size}); got values in "
                             f"[{int(tokens.min())}, {int(tokens.max())}].")


class RVQBottleneck(QuantizedBottleneck):
    """Residual VQ: each codebook quantizes what the previous ones left (EMA codebook updates,
    k-means init on the first batch, dead-code replacement, straight-through or
    rotation-trick gradients).

    "commitment" is the mean over active codebooks of mse(residual input, its code): in
    training as the library measures it when quantizing, in eval recomputed from the codebooks
    (which eval does not update) since the library reports 0 there.
    """

    def __init__(self, config: RVQBottleneckConfig, dim: int):
        # Imported here: the library pulls in torch's compiler (about a second) at import.
        from vector_quantize_pytorch import ResidualVQ
        super().__init__()
        self.num_codebooks = config.num_quantizers
        self.codebook_size = config.codebook_size
        self.threshold = config.threshold_ema_dead_code
        self.quantizer = ResidualVQ(
            dim=dim, num_quantizers=config.num_quantizers, codebook_size=config.codebook_size,
            decay=config.decay, kmeans_init=config.kmeans_init, kmeans_iters=config.kmeans_iters,
            threshold_ema_dead_code=config.threshold_ema_dead_code,
            quantize_dropout=config.quantizer_dropout,
            quantize_dropout_cutoff_index=config.min_quantizers - 1,
            rotation_trick=config.rotation_trick, codebook_dim=config.codebook_dim)

    def forward(self, x: torch.Tensor) -> BottleneckOutput:
        vectors = x.transpose(1, 2)
        quantized, indices, layer_losses = self.quantizer(vectors)
        active = int((indices >= 0).flatten(0, -2).any(dim=0).sum())
        tokens = indices[..., :active].transpose(1, 2)
        if self.training:
            commitment = layer_losses[:active].mean()
        else:
            commitment = self._commitment(vectors, tokens)
        return BottleneckOutput(
            quantized.transpose(1, 2), losses={"commitment": commitment},
            metrics={"codebook_usage": codebook_usage(tokens, self.codebook_size)},
            active_codebooks=active)

    def dead_codes(self) -> list[int]:
        """Codes training keeps alive only by replacing them. After each training step the
        library gives every code whose EMA usage fell below `threshold_ema_dead_code` a batch
        vector and a usage of exactly that threshold (some of them later, when a batch has
        fewer vectors than dead codes), so a usage at or below it marks a code that was dead
        at the last step; counting only those below it gave 0 by construction."""
        return [int((layer._codebook.cluster_size <= self.threshold).sum())
                for layer in self.quantizer.layers]

    def _codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """(K, B, frames, codebook dim) code vectors of tokens (B, K, frames), in the space the
        codes are matched in (the latent's, or its projection with `codebook_dim`)."""
        codebooks = self.quantizer.codebooks
        return torch.stack([codebooks[k][tokens[:, k]] for k in range(tokens.shape[1])])

    def _commitment(self, vectors: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        vectors = self.quantizer.project_in(vectors)
        codes = self._codes(tokens).to(vectors.dtype)
        before = torch.cumsum(codes, dim=0) - codes  # sum of the previous codebooks' codes
        residuals = vectors.unsqueeze(0) - before
        return F.mse_loss(residuals, codes)

    def encode_tokens(self, x: torch.Tensor) -> torch.Tensor:
        with _eval_mode(self.quantizer):
            _, indices, _ = self.quantizer(x.transpose(1, 2))
        return indices.transpose(1, 2).long()

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Latents from the first K <= num_codebooks codebooks (coarser with fewer)."""
        self._check_tokens(tokens, min_codebooks=1)
        return self.quantizer.project_out(self._codes(tokens).sum(dim=0)).transpose(1, 2)


class FSQBottleneck(QuantizedBottleneck):
    """Finite scalar quantization: each of `num_codebooks` groups of len(levels) projected
    dimensions is bounded and rounded to its levels; no codebook to learn, no extra loss."""

    def __init__(self, config: FSQBottleneckConfig, dim: int):
        from vector_quantize_pytorch import FSQ
        super().__init__()
        self.num_codebooks = config.num_codebooks
        self.quantizer = FSQ(levels=config.levels, dim=dim, num_codebooks=config.num_codebooks,
                             keep_num_codebooks_dim=True)
        self.codebook_size = int(self.quantizer.codebook_size)

    def forward(self, x: torch.Tensor) -> BottleneckOutput:
        latents, indices = self.quantizer(x.transpose(1, 2))
        tokens = indices.transpose(1, 2)
        return BottleneckOutput(
            latents.transpose(1, 2).to(x.dtype),
            metrics={"codebook_usage": codebook_usage(tokens, self.codebook_size)},
            active_codebooks=self.num_codebooks)

    def encode_tokens(self, x: torch.Tensor) -> torch.Tensor:
        _, indices = self.quantizer(x.transpose(1, 2))
        return indices.transpose(1, 2).long()

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        self._check_tokens(tokens, min_codebooks=self.num_codebooks)
        return self.quantizer.indices_to_codes(tokens.transpose(1, 2)).transpose(1, 2)
