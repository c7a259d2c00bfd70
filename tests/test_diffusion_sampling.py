"""Objectives, training timesteps and samplers, checked against closed forms.

The toy data are Gaussian, N(mean, std²) per element (a single point when std = 0), whose exact
denoiser is known: E[x | x_t] = mean + alpha std² / (alpha² std² + sigma²) (x_t - alpha mean).
Its probability-flow ODE keeps (x_t - alpha mean) / sqrt(alpha² std² + sigma²) constant, so
the ideal sample of initial noise z (at t = 1) is mean + std z.
"""
from __future__ import annotations

import math

import pytest
import torch

from audiotools.conditioning import ConditionerSet
from audiotools.models.diffusion import (
    TimeShiftConfig,
    TimestepsConfig,
    build_diffusion_model,
    get_objective,
    sample_timesteps,
    time_shift,
)
from audiotools.models.diffusion.objectives import (
    logit_normal_timesteps,
    truncated_logit_normal_timesteps,
    uniform_timesteps,
)
from audiotools.sampling.diffusion import SAMPLERS, guided_output, sample, time_grid

SHAPE = (3, 2, 5)
MEAN = 0.7


def gaussian_denoiser(objective, mean=MEAN, std=0.0):
    objective = get_objective(objective)

    def denoise(x, t, **_):
        alpha, sigma = objective.alpha_sigma(t.view(-1, 1, 1))
        x0 = mean + alpha * std ** 2 / (alpha ** 2 * std ** 2 + sigma ** 2) * (x - alpha * mean)
        return objective.output_for(x, x0, t)
    return denoise


def initial_noise(seed=0, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).double()


def run(sampler, objective="rectified_flow", steps=10, std=0.0, **options):
    return sample(gaussian_denoiser(objective, std=std), SHAPE, objective=objective, steps=steps,
                  sampler=sampler, dtype=torch.float64, **options)


# ------------------------------------------------------------------ objectives
def test_v_objective_on_known_inputs():
    objective = get_objective("v")
    x, noise, t = torch.full((1, 1, 1), 2.0), torch.full((1, 1, 1), 3.0), torch.tensor([1 / 3])
    noised, target = objective.training_pair(x, noise, t)
    alpha, sigma = math.cos(math.pi / 6), 0.5
    torch.testing.assert_close(noised, torch.full_like(x, alpha * 2 + sigma * 3))
    torch.testing.assert_close(target, torch.full_like(x, alpha * 3 - sigma * 2))
    x0, eps = objective.data_and_noise(noised, target, t)
    torch.testing.assert_close((x0, eps), (x, noise))
    torch.testing.assert_close(objective.output_for(noised, x, t), target)
    # The probability-flow velocity is d x_t / dt along the path: (pi / 2) v.
    torch.testing.assert_close(objective.velocity(noised, target, t), math.pi / 2 * target)


def test_rectified_flow_on_known_inputs():
    objective = get_objective("rectified_flow")
    x, noise, t = torch.full((2, 1, 1), 2.0), torch.full((2, 1, 1), 3.0), torch.tensor([0.25, 1.0])
    noised, target = objective.training_pair(x, noise, t)
    assert noised.flatten().tolist() == [2.25, 3.0]
    assert target.flatten().tolist() == [1.0, 1.0]
    x0, eps = objective.data_and_noise(noised, target, t)
    torch.testing.assert_close((x0, eps), (x, noise))
    torch.testing.assert_close(objective.velocity(noised, target, t), target)


def test_unknown_objective_lists_the_known_ones():
    with pytest.raises(ValueError, match="v, rectified_flow"):
        get_objective("eps")


# ------------------------------------------------------------------ training timesteps
@pytest.mark.parametrize("draw", [uniform_timesteps, logit_normal_timesteps,
                                  truncated_logit_normal_timesteps])
def test_timesteps_are_a_function_of_the_generator(draw):
    first = draw(64, torch.Generator().manual_seed(3))
    assert torch.equal(first, draw(64, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, draw(64, torch.Generator().manual_seed(4)))
    assert ((first >= 0) & (first <= 1)).all()


def test_uniform_timesteps_are_stratified():
    t = uniform_timesteps(64, torch.Generator().manual_seed(0))
    assert sorted((t * 64).floor().long().tolist()) == list(range(64))


def test_logit_normal_and_truncated_logit_normal_shapes():
    generator = torch.Generator().manual_seed(0)
    logit = logit_normal_timesteps(20000, generator, mean=1.0, std=0.5)
    assert abs(logit.median().item() - torch.sigmoid(torch.tensor(1.0)).item()) < 0.01
    truncation = 0.075
    t = truncated_logit_normal_timesteps(20000, generator, truncation)
    # Back to the logit-normal draw: never below the truncation point.
    u = truncation + (1 - t) * (1 - truncation)
    assert u.min() >= truncation - 1e-6 and t.max() > 0.99 and t.min() < 0.05


def test_time_shift_is_sat_distribution_shift():
    shift = TimeShiftConfig()
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    for length in (256, 1024, 8000):
        mu = -(shift.base_shift + (shift.max_shift - shift.base_shift)
               * (length - shift.min_length) / (shift.max_length - shift.min_length))
        sat = 1 - math.exp(mu) / (math.exp(mu) + (1 / (1 - t) - 1))
        torch.testing.assert_close(time_shift(t, length, shift), sat)
    ends = time_shift(torch.tensor([0.0, 1.0]), 4096, shift)
    assert ends.tolist() == [0.0, 1.0]


def test_sample_timesteps_follows_its_config():
    generator = torch.Generator().manual_seed(0)
    plain = sample_timesteps(TimestepsConfig(), 8, generator)
    generator = torch.Generator().manual_seed(0)
    shifted = sample_timesteps(TimestepsConfig(), 8, generator, shift=TimeShiftConfig(),
                               length=2048)
    torch.testing.assert_close(shifted, time_shift(plain, 2048, TimeShiftConfig()))
    with pytest.raises(ValueError, match="length="):
        sample_timesteps(TimestepsConfig(), 8, generator, shift=TimeShiftConfig())


# ------------------------------------------------------------------ samplers
EXACT_FOR_A_POINT = [(sampler, objective) for objective in ("v", "rectified_flow")
                     for sampler in ("ddim", "dpmpp_2m", "dpmpp_2m_sde")]
EXACT_FOR_A_POINT += [("euler", "rectified_flow"), ("heun", "rectified_flow")]


@pytest.mark.parametrize("sampler,objective", EXACT_FOR_A_POINT)
def test_exact_denoiser_of_a_point_samples_that_point(sampler, objective):
    out = run(sampler, objective, steps=6)
    torch.testing.assert_close(out, torch.full(SHAPE, MEAN, dtype=torch.float64))


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_euler_and_heun_on_the_v_objective_converge_to_the_point(sampler):
    # The v path is curved in t, so they are not exact there (both end on an Euler step).
    coarse, fine = ((run(sampler, "v", steps=steps) - MEAN).abs().max() for steps in (10, 50))
    assert fine < 1e-3 and fine < coarse / 20


@pytest.mark.parametrize("objective", ["v", "rectified_flow"])
def test_samplers_reach_the_gaussian_flow_map(objective):
    std = 0.3
    alpha, sigma = get_objective(objective).alpha_sigma(torch.tensor(1.0, dtype=torch.float64))
    ideal = MEAN + std * (initial_noise() - alpha * MEAN) / torch.sqrt(alpha ** 2 * std ** 2
                                                                         + sigma ** 2)
    errors = {(name, steps): (run(name, objective, steps=steps, std=std) - ideal).abs().max()
              for name in ("ddim", "euler", "heun", "dpmpp_2m") for steps in (64, 256)}
    assert errors["heun", 64] < errors["euler", 64] / 5
    assert errors["dpmpp_2m", 64] < errors["ddim", 64] / 4
    assert errors["heun", 256] < 2e-4 and errors["dpmpp_2m", 256] < 1e-3
    # Convergence orders: 4x the steps divide a first-order error by ~4, second-order by ~16.
    for name in ("ddim", "euler"):
        assert 3 < errors[name, 64] / errors[name, 256] < 5
    assert errors["heun", 64] / errors["heun", 256] > 12


def test_sde_sampler_draws_from_the_data_distribution():
    std = 0.5
    out = sample(gaussian_denoiser("v", std=std), (4000,  1, 1), objective="v", steps=30,
                 sampler="dpmpp_2m_sde", seed=1, dtype=torch.float64)
    assert abs(out.mean().item() - MEAN) < 0.03 and abs(out.std().item() - std) < 0.03


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_seed_reproduces_a_sample(sampler):
    eta = {"ddim": 0.5}.get(sampler)
    first = run(sampler, "v", std=0.3, seed=5, eta=eta)
    assert torch.equal(first, run(sampler, "v", std=0.3, seed=5, eta=eta))
    assert not torch.equal(first, run(sampler, "v", std=0.3, seed=6, eta=eta))
    generator = torch.Generator().manual_seed(5)
    assert torch.equal(first, run(sampler, "v", std=0.3, seed=generator, eta=eta))


def test_stochastic_samplers_draw_fresh_noise():
    deterministic = run("dpmpp_2m", "v", std=0.3)
    assert not torch.equal(run("dpmpp_2m_sde", "v", std=0.3), deterministic)
    assert not torch.equal(run("ddim", "v", std=0.3, eta=1.0), run("ddim", "v", std=0.3))


# ------------------------------------------------------------------ guidance
def conditional_denoiser(calls=None):
    """A 'network' whose output depends on the condition: c (B, 1) shifts it."""
    def denoise(x, t, c=None, g=None):
        if calls is not None:
            calls.append({"batch": x.shape[0], "c": c, "g": g})
        out = x * (1 - t.view(-1, 1, 1))
        out = out + (0 if c is None else c.view(-1, 1, 1) * torch.arange(x.shape[1]).view(1, -1, 1))
        return out + (0 if g is None else g.view(-1, 1, 1))
    return denoise


def test_cfg_scale_one_is_the_conditional_output():
    x, cond, uncond = torch.randn(SHAPE), {"c": torch.ones(3, 1)}, {"c": torch.zeros(3, 1)}
    calls = []
    output = guided_output(conditional_denoiser(calls), "v", cond=cond, uncond=uncond)
    torch.testing.assert_close(output(x, 0.4), conditional_denoiser()(x, torch.full((3,), 0.4),
                                                                      **cond))
    assert [call["batch"] for call in calls] == [3]
    with_cfg = run_guided(cfg_scale=1.0, uncond=uncond)
    assert torch.equal(with_cfg, run_guided(cfg_scale=1.0))


def run_guided(**options):
    return sample(conditional_denoiser(), SHAPE, objective="v", steps=4, sampler="ddim",
                  cond={"c": torch.ones(3, 1), "g": torch.full((3, 1), 0.5)}, **options)


def test_cfg_mixes_the_branches_and_the_negative_condition_replaces_the_null_one():
    x, t = torch.randn(SHAPE), torch.full((3,), 0.4)
    denoise = conditional_denoiser()
    cond = {"c": torch.ones(3, 1), "g": torch.full((3, 1), 0.5)}
    negative = {"c": torch.full((3, 1), -2.0)}  # g is kept in both branches
    expected = denoise(x, t, c=negative["c"], g=cond["g"])
    expected = expected + 3.0 * (denoise(x, t, **cond) - expected)
    output = guided_output(denoise, "v", cond=cond, uncond=negative, cfg_scale=3.0)
    torch.testing.assert_close(output(x, 0.4), expected)
    zero = guided_output(denoise, "v", cond=cond, uncond=negative, cfg_scale=0.0)
    torch.testing.assert_close(zero(x, 0.4), denoise(x, t, c=negative["c"], g=cond["g"]))


def test_cfg_applies_only_inside_its_interval():
    calls = []
    cond, uncond = {"c": torch.ones(3, 1)}, {"c": torch.zeros(3, 1)}
    sample(conditional_denoiser(calls), SHAPE, objective="rectified_flow", steps=10,
           sampler="euler", cond=cond, uncond=uncond, cfg_scale=4.0, cfg_interval=(0.25, 0.75))
    # Grid 1.0, 0.9, ..., 0.1: sigma = t, so t in [0.25, 0.75] (0.7 ... 0.3) guides.
    assert [call["batch"] for call in calls] == [3, 3, 3, 6, 6, 6, 6, 6, 3, 3]


def test_cfg_rescale_restores_the_conditional_std():
    x = torch.randn(2, 8, 6)
    cond, uncond = {"c": torch.full((2, 1), 2.0)}, {"c": torch.zeros(2, 1)}
    denoise = conditional_denoiser()
    conditional = denoise(x, torch.full((2,), 0.5), **cond)
    rescaled = guided_output(denoise, "v", cond=cond, uncond=uncond, cfg_scale=5.0,
                             cfg_rescale=1.0)(x, 0.5)
    torch.testing.assert_close(rescaled.std(dim=1), conditional.std(dim=1))
    plain = guided_output(denoise, "v", cond=cond, uncond=uncond, cfg_scale=5.0)(x, 0.5)
    half = guided_output(denoise, "v", cond=cond, uncond=uncond, cfg_scale=5.0,
                         cfg_rescale=0.5)(x, 0.5)
    torch.testing.assert_close(half, (plain + rescaled) / 2)


@pytest.mark.parametrize("options,message", [
    ({"steps": 0}, "steps=0"),
    ({"cfg_scale": -1.0, "uncond": {}}, "cfg_scale=-1.0"),
    ({"cfg_scale": 2.0}, "needs uncond"),
    ({"sampler": "lms"}, "known samplers: ddim"),
    ({"cfg_interval": (0.8, 0.2)}, "cfg_interval"),
    ({"eta": 1.0, "sampler": "heun"}, "eta=1.0"),
    ({"known": torch.zeros(SHAPE)}, "known_mask"),
])
def test_bad_arguments_are_named(options, message):
    arguments = {"objective": "v", "steps": 4, **options}
    with pytest.raises(ValueError, match=message):
        sample(conditional_denoiser(), SHAPE, **arguments)


# ------------------------------------------------------------------ inpainting, callback
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_inpainting_keeps_the_known_region(sampler):
    known = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9)).double()
    mask = torch.zeros(SHAPE[0], 1, SHAPE[2], dtype=torch.bool)
    mask[..., :2] = True  # continuation: the first two frames are given
    out = run(sampler, "v", std=0.3, known=known, known_mask=mask)
    torch.testing.assert_close(out[..., :2], known[..., :2], rtol=0, atol=1e-12)
    assert (out[..., 2:] - known[..., 2:]).abs().min() > 0


def test_variation_from_init_starts_partway():
    init = torch.full(SHAPE, 5.0, dtype=torch.float64)
    calls = []

    def denoise(x, t, **_):
        calls.append(t[0].item())
        return gaussian_denoiser("rectified_flow")(x, t)
    out = sample(denoise, SHAPE, objective="rectified_flow", steps=4, sampler="euler",
                 init=init, t_max=0.5, dtype=torch.float64)
    assert calls == [0.5, 0.375, 0.25, 0.125]
    torch.testing.assert_close(out, torch.full(SHAPE, MEAN, dtype=torch.float64))


def test_callback_reports_every_step_and_the_grid_follows_the_shift():
    seen = []
    run("heun", steps=5, callback=lambda step, total: seen.append((step, total)))
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    shift = TimeShiftConfig()
    grid = time_grid(4, shift=shift, length=1024)
    torch.testing.assert_close(grid, time_shift(torch.linspace(1, 0, 5, dtype=torch.float64),
                                                1024, shift))


def test_sampling_a_conditioned_dit_with_guidance():
    conditioners = ConditionerSet({"seconds_total": {"type": "number", "min": 0, "max": 60},
                                   "ensemble": {"type": "options",
                                                "options": ["piano", "strings"]}}, dim=8)
    torch.manual_seed(0)
    model = build_diffusion_model({
        "objective": "rectified_flow", "cross_attention_cond_ids": ["ensemble"],
        "global_cond_ids": ["seconds_total"],
        "network": {"type": "dit", "io_channels": 4, "embed_dim": 16, "depth": 1,
                    "num_heads": 2, "cond_token_dim": 8, "global_cond_dim": 8}}).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    values = [{"seconds_total": 10, "ensemble": "piano"}] * 2
    cond = model.condition_inputs(conditioners.encode(values))
    uncond = model.condition_inputs(conditioners.unconditional(2))
    out = sample(model, (2, 4, 8), objective=model.objective, steps=3, seed=0, cond=cond,
                 uncond=uncond, cfg_scale=3.0)
    assert out.shape == (2, 4, 8) and torch.isfinite(out).all()
    again = sample(model, (2, 4, 8), objective=model.objective, steps=3, seed=0, cond=cond,
                   uncond=uncond, cfg_scale=3.0)
    assert torch.equal(out, again)
