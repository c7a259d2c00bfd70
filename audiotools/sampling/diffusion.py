"""Diffusion samplers: from noise (a seed) to data with any `denoise(x, t, **cond) -> output`.

`denoise` is the network: x (B, C, T), t (B,) in [0, 1], keyword conditioning tensors (a
DiffusionModel's `condition_inputs`), returning the objective's output (v or flow velocity).
The objective (audiotools.models.diffusion.objectives) turns an output into implied data and
noise, so every sampler serves the v and rectified-flow objectives alike:

    ddim          DDIM (deterministic with eta=0; SAT's v-diffusion `sample`); x_s from the
                  predicted data and noise, eta > 0 adds the DDIM posterior noise
    euler, heun   the probability-flow ODE dx/dt = alpha' x0 + sigma' noise (the network's
                  output itself for rectified flow), first and second order; Heun's last step,
                  to t = 0 where the derivative is undefined, is an Euler step
    dpmpp_2m      DPM-Solver++(2M) (Lu et al. 2022): second-order multistep in log-SNR on the
                  predicted data
    dpmpp_2m_sde  its SDE form (eta, default 1, scales the injected noise), midpoint correction

Classifier-free guidance mixes the conditional and unconditional outputs, output = uncond +
scale (cond - uncond), optionally rescaled toward the conditional output's standard deviation
(SAT's `scale_phi`), only where the noise level sigma(t) lies in `cfg_interval` (SAT's
`cfg_interval`; sigma = t for rectified flow, sin(pi t / 2) for v). The unconditional branch
is `uncond`: null conditions, or negative ones (`ConditionerSet.unconditional(negative=...)`)
for negative prompting; a key it lacks is taken from `cond` (SAT keeps global and input-concat
conditions in both branches).

Inpainting and continuation: where `known_mask` is True the state is replaced, after every
step, by the known data noised to the step's level with the initial noise, so the known region
follows its own noising path and ends exactly as given.

The time grid runs linearly from t_max to 0 in `steps` steps (then through the model's time
shift, if any), as SAT's v-objective DDIM (`sample`) and `sample_discrete_euler` space theirs.
SAT's other entry points space them otherwise (`sample_rf`: evenly in log-SNR; `sample_k`:
k-diffusion's polyexponential sigmas), so one sampler name and step count does not give their
samples; on the same grid each sampler here equals its SAT / k-diffusion peer to float64
rounding (measured on a closed-form Gaussian-mixture denoiser).

Why not k-diffusion: it samples in the variance-exploding sigma in [0, inf) parametrisation,
where rectified flow's t = 1 is sigma = inf, and it pulls in kornia/torchvision (which replace
the pinned torch, see STACK_NOTES) and more for what is here a few dozen lines.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from ..models.diffusion.config import TimeShiftConfig
from ..models.diffusion.objectives import Objective, get_objective, time_shift
from .limits import MAX_STEPS

Denoise = Callable[..., torch.Tensor]
Inputs = Mapping[str, torch.Tensor | None]
Output = Callable[[torch.Tensor, float], torch.Tensor]
SAMPLERS = ("ddim", "euler", "heun", "dpmpp_2m", "dpmpp_2m_sde")


def time_grid(steps: int, *, t_max: float = 1.0, shift: TimeShiftConfig | None = None,
              length: int | None = None) -> torch.Tensor:
    """(steps + 1,) float64 times from t_max down to 0; `shift` needs the length in frames."""
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps={steps}: give 1 to {MAX_STEPS} (50 is the usual count)")
    if not 0.0 < t_max <= 1.0:
        raise ValueError(f"t_max={t_max}: must be in (0, 1]")
    grid = torch.linspace(t_max, 0.0, steps + 1, dtype=torch.float64)
    if shift is not None:
        if length is None:
            raise ValueError("a time shift depends on the sequence length: pass length=")
        grid = time_shift(grid, length, shift)
    return grid


def _alpha_sigma(objective: Objective, t: float) -> tuple[float, float]:
    alpha, sigma = objective.alpha_sigma(torch.tensor(t, dtype=torch.float64))
    return float(alpha), float(sigma)


def _present(inputs: Inputs | None) -> dict[str, torch.Tensor]:
    return {key: value for key, value in (inputs or {}).items() if value is not None}


def _rescaled(guided: torch.Tensor, conditional: torch.Tensor, phi: float) -> torch.Tensor:
    """SAT's CFG rescale: match the conditional output's std across channels (per frame; over
    all non-batch dimensions when there is one channel, whose std across channels is
    undefined)."""
    dims = (1,) if guided.shape[1] > 1 else tuple(range(1, guided.dim()))
    ratio = conditional.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)
    return phi * guided * ratio + (1 - phi) * guided


def guided_output(denoise: Denoise, objective: Objective | str, *, cond: Inputs | None = None,
                  uncond: Inputs | None = None, cfg_scale: float = 1.0, cfg_rescale: float = 0.0,
                  cfg_interval: tuple[float, float] = (0.0, 1.0)) -> Output:
    """(x, t) -> network output under classifier-free guidance (see the module docstring).
    With cfg_scale 1, or sigma(t) outside cfg_interval, only the conditional branch runs."""
    if cfg_scale < 0:
        raise ValueError(f"cfg_scale={cfg_scale}: must be >= 0")
    if not 0.0 <= cfg_rescale <= 1.0:
        raise ValueError(f"cfg_rescale={cfg_rescale}: must be in [0, 1]")
    low, high = cfg_interval
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"cfg_interval={cfg_interval}: needs 0 <= t_min <= t_max <= 1")
    objective = get_objective(objective)
    conditional = _present(cond)
    other = _present(uncond)
    extra = sorted(set(other) - set(conditional))
    if extra:
        raise ValueError(f"uncond has {', '.join(extra)}, which cond lacks")
    if cfg_scale != 1.0 and uncond is None:
        raise ValueError(f"cfg_scale={cfg_scale} needs uncond (null or negative conditions)")
    unconditional = {**conditional, **other}

    def output(x: torch.Tensor, t: float) -> torch.Tensor:
        times = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        sigma = _alpha_sigma(objective, t)[1]
        if cfg_scale == 1.0 or not low <= sigma <= high:
            return denoise(x, times, **conditional)
        both = denoise(torch.cat([x, x]), torch.cat([times, times]),
                       **{key: torch.cat([value, unconditional[key]])
                          for key, value in conditional.items()})
        with_cond, without = both.chunk(2)
        mixed = without + cfg_scale * (with_cond - without)
        return _rescaled(mixed, with_cond, cfg_rescale) if cfg_rescale else mixed

    return output


class _Noise:
    """Gaussian noise of one shape from a CPU generator, moved to the sampling device (the same
    numbers on every device)."""

    def __init__(self, generator: torch.Generator, shape: tuple[int, ...],
                 device: torch.device | str | None, dtype: torch.dtype):
        self.generator, self.shape, self.device, self.dtype = generator, shape, device, dtype

    def __call__(self) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.generator).to(self.device, self.dtype)


def _ddim(output: Output, objective: Objective, x: torch.Tensor, grid: list[float], eta: float,
          noise: _Noise, after: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    for index, (t, s) in enumerate(zip(grid[:-1], grid[1:], strict=True)):
        x0, eps = objective.data_and_noise(x, output(x, t), t)
        alpha_t, sigma_t = _alpha_sigma(objective, t)
        alpha_s, sigma_s = _alpha_sigma(objective, s)
        # Posterior std eta sigma_s sqrt(1 - SNR_t / SNR_s): DDIM's for any schedule.
        snr_ratio = (alpha_t * sigma_s / (sigma_t * alpha_s)) ** 2
        fresh = eta * sigma_s * math.sqrt(max(0.0, 1 - snr_ratio))
        x = alpha_s * x0 + math.sqrt(max(0.0, sigma_s ** 2 - fresh ** 2)) * eps
        if fresh:
            x = x + fresh * noise()
        x = after(index, x)
    return x


def _euler(output: Output, objective: Objective, x: torch.Tensor, grid: list[float],
           second_order: bool,
           after: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    for index, (t, s) in enumerate(zip(grid[:-1], grid[1:], strict=True)):
        slope = objective.velocity(x, output(x, t), t)
        moved = x + (s - t) * slope
        if second_order and s > 0:
            end_slope = objective.velocity(moved, output(moved, s), s)
            moved = x + (s - t) * (slope + end_slope) / 2
        x = after(index, moved)
    return x


def _dpmpp_2m(output: Output, objective: Objective, x: torch.Tensor, grid: list[float],
              eta: float, noise: _Noise,
              after: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Exponential-integrator steps on the predicted data D, written with
    rho = exp(-h) = (alpha_t sigma_s) / (sigma_t alpha_s) so that alpha_t = 0 (rectified flow
    at t = 1) and sigma_s = 0 (the last step) need no infinite log-SNR:
    x_s = (sigma_s / sigma_t) rho^eta x_t + alpha_s (1 - rho^(1 + eta)) D
          + sigma_s sqrt(1 - rho^(2 eta)) z,
    with D corrected by the previous step's prediction (second order) when both steps have a
    finite log-SNR step h."""
    previous: torch.Tensor | None = None
    previous_h: float | None = None
    for index, (t, s) in enumerate(zip(grid[:-1], grid[1:], strict=True)):
        x0, _ = objective.data_and_noise(x, output(x, t), t)
        alpha_t, sigma_t = _alpha_sigma(objective, t)
        alpha_s, sigma_s = _alpha_sigma(objective, s)
        rho = alpha_t * sigma_s / (sigma_t * alpha_s)
        h = -math.log(rho) if rho > 0 else None
        data_weight = alpha_s * (1 - rho ** (1 + eta))
        moved = (sigma_s / sigma_t) * rho ** eta * x + data_weight * x0
        if previous is not None and h is not None and previous_h is not None:
            ratio = previous_h / h
            moved = moved + data_weight / (2 * ratio) * (x0 - previous)
        if eta and sigma_s > 0:
            moved = moved + sigma_s * math.sqrt(1 - rho ** (2 * eta)) * noise()
        previous, previous_h = x0, h
        x = after(index, moved)
    return x


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise ValueError("pass a CPU generator (or an int seed): noise is drawn on the CPU "
                             "so that a seed gives the same sample on every device")
        return seed
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def sample(denoise: Denoise, shape: tuple[int, ...], *, objective: Objective | str, steps: int,
           sampler: str = "dpmpp_2m", seed: int | torch.Generator = 0,
           cond: Inputs | None = None, uncond: Inputs | None = None, cfg_scale: float = 1.0,
           cfg_rescale: float = 0.0, cfg_interval: tuple[float, float] = (0.0, 1.0),
           eta: float | None = None, t_max: float = 1.0, init: torch.Tensor | None = None,
           known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None,
           shift: TimeShiftConfig | None = None, device: torch.device | str | None = None,
           dtype: torch.dtype = torch.float32,
           callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Data of `shape` (B, C, T) sampled from `seed` (an int or a CPU generator).

    `init` (shape): start from it noised to `t_max` (< 1: variations). `known`, `known_mask`
    (bool, broadcastable to shape; True where known): inpainting / continuation. `eta`: noise
    of ddim (default 0) and dpmpp_2m_sde (default 1). `shift`: the model's time shift, for
    sequences of T frames. `callback(step, steps)` after each step."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r}: known samplers: {', '.join(SAMPLERS)}")
    if eta is not None and eta < 0:
        raise ValueError(f"eta={eta}: must be >= 0")
    if eta and sampler not in ("ddim", "dpmpp_2m_sde"):
        raise ValueError(f"eta={eta}: only ddim and dpmpp_2m_sde inject noise")
    objective = get_objective(objective)
    grid = time_grid(steps, t_max=t_max, shift=shift, length=shape[-1]).tolist()
    output = guided_output(denoise, objective, cond=cond, uncond=uncond, cfg_scale=cfg_scale,
                           cfg_rescale=cfg_rescale, cfg_interval=cfg_interval)
    noise = _Noise(_generator(seed), tuple(shape), device, dtype)
    start = noise()
    alpha, sigma = _alpha_sigma(objective, grid[0])
    # The state at t_max: `init` (else zero data) noised to that level.
    x = sigma * start if init is None else alpha * init.to(device, dtype) + sigma * start

    mask = None
    if known is not None or known_mask is not None:
        if known is None or known_mask is None:
            raise ValueError("inpainting needs both known and known_mask")
        known = known.to(device, dtype).expand(shape)
        mask = known_mask.to(device, torch.bool).expand(shape)
        x = torch.where(mask, alpha * known + sigma * start, x)

    def after(index: int, state: torch.Tensor) -> torch.Tensor:
        if mask is not None:
            level_alpha, level_sigma = _alpha_sigma(objective, grid[index + 1])
            state = torch.where(mask, level_alpha * known + level_sigma * start, state)
        if callback is not None:
            callback(index + 1, steps)
        return state

    if sampler == "ddim":
        return _ddim(output, objective, x, grid, eta or 0.0, noise, after)
    if sampler in ("euler", "heun"):
        return _euler(output, objective, x, grid, sampler == "heun", after)
    sde_eta = (1.0 if eta is None else eta) if sampler == "dpmpp_2m_sde" else 0.0
    return _dpmpp_2m(output, objective, x, grid, sde_eta, noise, after)
