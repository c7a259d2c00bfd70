"""Diffusion objectives (what the network is trained to output) and training timestep draws.

Both objectives interpolate data x and Gaussian noise: x_t = alpha(t) x + sigma(t) noise, t in
[0, 1] (t = 1 is pure noise), and train the network to output a velocity:

    v               alpha = cos(pi t / 2), sigma = sin(pi t / 2), target alpha noise - sigma x
    rectified_flow  alpha = 1 - t,         sigma = t,             target noise - x

The inverse maps give the data and noise a network output implies at (x_t, t); samplers work
with those, so every sampler serves both objectives.

Timestep draws are functions of a torch.Generator only (no hidden state), so a training step
is reproduced from the generator state a checkpoint saves.
"""
from __future__ import annotations

import math

import torch

from .config import TimeShiftConfig, TimestepsConfig


def _expand(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """t as a scalar or (B,) broadcast against x (B, ...), in x's dtype and device."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else t


class Objective:
    """x_t = alpha(t) x + sigma(t) noise, and a network output that is a velocity."""

    name: str

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def alpha_sigma_rates(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(d alpha / dt, d sigma / dt): the probability-flow ODE is
        dx/dt = alpha' x0 + sigma' noise."""
        raise NotImplementedError

    def noised(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = self.alpha_sigma(_expand(t, x))
        return alpha * x + sigma * noise

    def target(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_pair(self, x: torch.Tensor, noise: torch.Tensor,
                      t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(network input x_t, target output) for data x, noise and times t (B,)."""
        return self.noised(x, noise, t), self.target(x, noise, t)

    def data_and_noise(self, x_t: torch.Tensor, output: torch.Tensor,
                       t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, noise) that the network output implies at (x_t, t)."""
        raise NotImplementedError

    def output_for(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network output whose implied data at (x_t, t) is x0 (sigma(t) > 0): turns a
        denoiser (x_t, t) -> x0 into a network, e.g. an exact one for tests."""
        alpha, sigma = self.alpha_sigma(_expand(t, x_t))
        noise = (x_t - alpha * x0) / sigma
        return self.target(x0, noise, t)

    def velocity(self, x_t: torch.Tensor, output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """dx/dt of the probability-flow ODE at (x_t, t)."""
        x0, noise = self.data_and_noise(x_t, output, t)
        rate_alpha, rate_sigma = self.alpha_sigma_rates(_expand(t, x_t))
        return rate_alpha * x0 + rate_sigma * noise


class VObjective(Objective):
    """v-prediction on the cosine schedule (v-diffusion, stable-audio-tools' `v`)."""

    name = "v"

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)

    def alpha_sigma_rates(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return -math.pi / 2 * torch.sin(t * math.pi / 2), math.pi / 2 * torch.cos(t * math.pi / 2)

    def target(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = self.alpha_sigma(_expand(t, x))
        return alpha * noise - sigma * x

    def data_and_noise(self, x_t: torch.Tensor, output: torch.Tensor,
                       t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, sigma = self.alpha_sigma(_expand(t, x_t))
        return alpha * x_t - sigma * output, sigma * x_t + alpha * output


class RectifiedFlowObjective(Objective):
    """Straight paths from data to noise; the network outputs their velocity noise - x."""

    name = "rectified_flow"

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 1 - t, t

    def alpha_sigma_rates(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return -torch.ones_like(t), torch.ones_like(t)

    def target(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return noise - x

    def data_and_noise(self, x_t: torch.Tensor, output: torch.Tensor,
                       t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = _expand(t, x_t)
        return x_t - t * output, x_t + (1 - t) * output

    def velocity(self, x_t: torch.Tensor, output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return output


OBJECTIVES: dict[str, type[Objective]] = {"v": VObjective, "rectified_flow": RectifiedFlowObjective}


def get_objective(objective: str | Objective) -> Objective:
    """An Objective by name ("v", "rectified_flow"); an Objective passes through."""
    if isinstance(objective, Objective):
        return objective
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}: known objectives: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[objective]()


# ------------------------------------------------------------------ training timesteps
def uniform_timesteps(batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(batch_size,) in [0, 1): one scrambled Sobol set per batch, seeded from `generator`
    (stratified within the batch like SAT's Sobol draws, but stateless: SAT's engine carries
    a position across batches that a resume would lose)."""
    seed = int(torch.randint(0, 2 ** 62, (), generator=generator))
    engine = torch.quasirandom.SobolEngine(1, scramble=True, seed=seed)
    return engine.draw(batch_size, dtype=torch.float32)[:, 0]


def logit_normal_timesteps(batch_size: int, generator: torch.Generator, mean: float = 0.0,
                           std: float = 1.0) -> torch.Tensor:
    """sigmoid(N(mean, std²)): SD3's logit-normal, more weight on the middle times."""
    return torch.sigmoid(mean + std * torch.randn(batch_size, generator=generator))


def truncated_logit_normal_timesteps(batch_size: int, generator: torch.Generator,
                                     truncation: float = 0.075) -> torch.Tensor:
    """SAT's `trunc_logit_normal`: a standard logit-normal u restricted to u >= truncation,
    rescaled to [0, 1] by (u - truncation) / (1 - truncation), returned as 1 - that (so t = 1,
    pure noise, is reached and t near 0 is rare). Drawn by inverse CDF."""
    normal = torch.distributions.Normal(0.0, 1.0)
    low = normal.cdf(torch.logit(torch.tensor(truncation)))
    uniform = low + (1 - low) * torch.rand(batch_size, generator=generator)
    u = torch.sigmoid(normal.icdf(uniform.clamp(max=1 - 1e-7)))
    return 1 - (u - truncation) / (1 - truncation)


def time_shift(t: torch.Tensor, length: int, config: TimeShiftConfig) -> torch.Tensor:
    """SAT's DistributionShift: t -> s t / (1 + (s - 1) t), log s = base_shift + (max_shift -
    base_shift) (length - min_length) / (max_length - min_length); longer sequences (frames)
    spend more of the range at high noise. Keeps 0 and 1 fixed; exact at t = 1."""
    progress = (length - config.min_length) / (config.max_length - config.min_length)
    shift = math.exp(config.base_shift + (config.max_shift - config.base_shift) * progress)
    return shift * t / (1 + (shift - 1) * t)


def sample_timesteps(config: TimestepsConfig, batch_size: int, generator: torch.Generator, *,
                     shift: TimeShiftConfig | None = None,
                     length: int | None = None) -> torch.Tensor:
    """Training times (batch_size,) as the recipe's `timesteps` section says, then the model's
    time shift for sequences of `length` frames (required with a shift)."""
    if config.type == "uniform":
        t = uniform_timesteps(batch_size, generator)
    elif config.type == "logit_normal":
        t = logit_normal_timesteps(batch_size, generator, config.mean, config.std)
    else:
        t = truncated_logit_normal_timesteps(batch_size, generator, config.truncation)
    if shift is not None:
        if length is None:
            raise ValueError("a time shift depends on the sequence length: pass length=")
        t = time_shift(t, length, shift)
    return t
