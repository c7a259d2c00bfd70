"""Layers shared by the autoencoder networks: weight-normalised convolutions and SnakeBeta.

Weight norm uses torch's parametrization (`parametrizations.weight.original0/1`); its load hook
also accepts the older `weight_g`/`weight_v` names that stable-audio-tools and EnCodec
checkpoints carry, so their state dicts load without renaming these keys.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def wn_conv1d(*args, **kwargs) -> nn.Conv1d:
    """A weight-normalised `nn.Conv1d` (norm over all dims but the first, as torch's default)."""
    return weight_norm(nn.Conv1d(*args, **kwargs))


def wn_conv_transpose1d(*args, **kwargs) -> nn.ConvTranspose1d:
    """A weight-normalised `nn.ConvTranspose1d` (dim 0, as stable-audio-tools)."""
    return weight_norm(nn.ConvTranspose1d(*args, **kwargs))


class _SnakeBetaFunction(torch.autograd.Function):
    """SnakeBeta with a hand-written backward: about half the memory passes of autograd's
    (elementwise work dominates small Oobleck models on a CPU) and only x saved."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, log_alpha: torch.Tensor,
                log_beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, log_alpha, log_beta)
        alpha, inv_beta = _snake_coefficients(log_alpha, log_beta, x.dtype)
        return torch.mul(x, alpha).sin_().square_().mul_(inv_beta).add_(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, log_alpha, log_beta = ctx.saved_tensors
        alpha, inv_beta = _snake_coefficients(log_alpha, log_beta, x.dtype)
        phase = torch.mul(x, 2 * alpha)
        grad_sin = grad * torch.sin(phase)  # d sin^2(a x) / d(a x) = sin(2 a x)
        grad_x = torch.addcmul(grad, grad_sin, alpha * inv_beta)
        # d/d log_alpha = x sin(2ax) a / beta; d/d log_beta = -sin^2(ax) exp(log_beta) / beta^2
        total = torch.promote_types(x.dtype, torch.float32)  # per-channel sums in >= fp32
        grad_alpha = (grad_sin * x).sum(dim=(0, 2), dtype=total) * (alpha * inv_beta).flatten()
        sin_squared = phase.cos_().neg_().add_(1).mul_(0.5)
        grad_beta = ((grad * sin_squared).sum(dim=(0, 2), dtype=total)
                     * -(inv_beta.flatten() ** 2) * log_beta.exp())
        return grad_x, grad_alpha.to(log_alpha.dtype), grad_beta.to(log_beta.dtype)


def _snake_coefficients(log_alpha: torch.Tensor, log_beta: torch.Tensor,
                        dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha and 1 / (beta + 1e-9) shaped (1, C, 1) for broadcasting over (B, C, T)."""
    alpha = log_alpha.exp()
    inv_beta = (log_beta.exp() + 1e-9).reciprocal()
    return alpha.to(dtype)[None, :, None], inv_beta.to(dtype)[None, :, None]


class SnakeBeta(nn.Module):
    """x + 1/beta * sin(alpha * x)^2 per channel, with alpha and beta stored as logarithms.

    Log-scale parameters initialised at 0 (alpha = beta = 1) are what stable-audio-tools'
    Oobleck uses; the parameter names and shapes (`alpha`, `beta`: (channels,)) match it.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SnakeBetaFunction.apply(x, self.alpha, self.beta)
