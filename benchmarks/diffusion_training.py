"""DiT training step: audiotools' DiT vs stable-audio-tools' own DiT, same config, same run.

    python benchmarks/diffusion_training.py [--pairs 8] [--steps 2] [--warmup 2] [--threads 1]
                                            [--precision 32|bf16-mixed]

Config: an unconditional DiT on latents (32 channels, patch 1), width 256, 6 blocks of 4 heads
(64 wide), SwiGLU x4, timestep token prepended; 6,458,496 parameters on both sides (checked).
Batch 4 x 32 x 256 latents (random, fixed), v objective, AdamW (lr 1e-4, wd 1e-3), fp32 or
(`--precision bf16-mixed`) both steps' forward and loss under CPU bf16 autocast: what our
solver's `precision: auto` picks on a CPU with AVX-512 BF16, and what SAT's own default
(`precision = 16-mixed` in its defaults.ini) becomes on a CPU, where Lightning replaces
16-mixed by bf16-mixed.

- audiotools: `build_diffusion_model`, and the solver's own code for the step: the loss is
  `DiffusionSolver._denoising_loss` (objective's training pair, forward, masked MSE), times
  from `sample_timesteps` (the recipe default, Sobol), the update `OptimizerUnit.backward`
  (backward, clipping if set, step, zero_grad, schedule) around `build_optimizer`'s AdamW
  (torch's fused CPU kernel) -- what `StandardSolver._run_batches` does with a batch.
- stable-audio-tools 0.0.19 (reference/sat, see scripts/check_sat_dit_parity.py), in a worker
  process under its interpreter: the model from its factory, `create_model_from_config` with
  `model_type: diffusion_uncond`, `type: dit` (DiffusionModelWrapper around DiTUncondWrapper
  around its DiffusionTransformer); the step of its DiffusionUncondTrainingWrapper for `v`
  (Sobol times, `get_alphas_sigmas`, noised inputs and targets, its MSELoss),
  then zero_grad, backward, step of `torch.optim.AdamW` (what its
  `create_optimizer_from_config` builds, torch's default: not fused), as Lightning runs it.
  Timed twice: its default (`use_checkpointing=True`: every block under
  torch.utils.checkpoint, recomputed in the backward) and with checkpointing off.

`pairs` rounds; each measures the matmul peak in the run's compute dtype (2048², best of 5),
then one measurement of each of the three (the order rotating), a measurement being the mean
of `steps` steps. Ratios are medians over rounds of the round's ratio (this shared machine's
speed drifts). FLOPs per step are counted by torch.utils.flop_counter on the forward and
backward of each side (matmuls, plus attention, whose CPU kernel the counter lacks, by its own
SDPA formulas): "model FLOPs" without recomputation, so achieved GFLOP/s = model FLOPs / step
time and % of the round's peak; SAT's default executes more (its recomputed forward), also
printed.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import types
from typing import Any

import torch
import torch.nn.functional as F
from peer import REPO, PeerWorker, load_average, machine_line, matmul_peak, serve

SAT_PYTHON = REPO / "reference" / "sat" / "bin" / "python"
BATCH, CHANNELS, FRAMES = 4, 32, 256
DIT = {"embed_dim": 256, "depth": 6, "num_heads": 4, "patch_size": 1}
LR, WEIGHT_DECAY = 1e-4, 1e-3
SIDES = ("audiotools", "SAT default", "SAT no checkpointing")
PRECISIONS = ("32", "bf16-mixed")


def flop_counter():
    """FlopCounterMode that also counts CPU flash attention (forward and backward)."""
    from torch.utils import flop_counter
    aten = torch.ops.aten

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)

    return flop_counter.FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: forward,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: backward})


def latents() -> torch.Tensor:
    return torch.randn(BATCH, CHANNELS, FRAMES, generator=torch.Generator().manual_seed(0))


def mean_step_seconds(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


# ------------------------------------------------------------------ audiotools
def our_side(precision: str) -> tuple[torch.nn.Module, Any]:
    """Our model and a step(): the solver's loss (under its autocast) and update on a fixed
    latent batch."""
    from audiotools.config import OptimConfig, ScheduleConfig
    from audiotools.models.diffusion import TimestepsConfig, build_diffusion_model, sample_timesteps
    from audiotools.solvers.diffusion import DiffusionSolver
    from audiotools.solvers.optim import build_optimizer
    from audiotools.solvers.optimizer_unit import OptimizerUnit
    from audiotools.solvers.precision import autocast

    model = build_diffusion_model({"objective": "v", "network": {
        "type": "dit", "io_channels": CHANNELS, **DIT}}).train()
    optim = OptimConfig(lr=LR, weight_decay=WEIGHT_DECAY)
    unit = OptimizerUnit(build_optimizer(model.parameters(), optim), optim, ScheduleConfig(),
                         total_updates=10 ** 6, device_type="cpu", scale_gradients=False)
    solver = types.SimpleNamespace(model=model)  # what _denoising_loss reads of the solver
    data, mask = latents(), torch.ones(BATCH, FRAMES, dtype=torch.bool)
    generator = torch.Generator().manual_seed(1)
    timesteps = TimestepsConfig()

    def loss() -> torch.Tensor:
        t = sample_timesteps(timesteps, BATCH, generator, shift=model.config.time_shift,
                             length=FRAMES)
        noise = torch.randn(data.shape, generator=generator)
        with autocast(precision, torch.device("cpu")):  # as StandardSolver._run_batches
            return DiffusionSolver._denoising_loss(solver, data, mask, {}, t, noise)

    def step() -> None:
        unit.backward(loss(), 0)

    step.loss = loss
    return model, step


def count_flops(loss) -> int:
    counter = flop_counter()
    with counter:
        loss().backward()
    return counter.get_total_flops()


# ------------------------------------------------------------------ stable-audio-tools
def sat_side(args: argparse.Namespace) -> None:
    with contextlib.redirect_stdout(sys.stderr):  # SAT prints; stdout carries the answers
        sat_serve(args)


def sat_serve(args: argparse.Namespace) -> None:
    from stable_audio_tools.inference.sampling import get_alphas_sigmas
    from stable_audio_tools.models.factory import create_model_from_config
    torch.manual_seed(0)
    wrapper = create_model_from_config({
        "model_type": "diffusion_uncond", "sample_size": FRAMES, "sample_rate": 16000,
        "model": {"type": "dit", "config": {"in_channels": CHANNELS, **DIT}}}).train()
    network = wrapper.model.model  # its DiffusionTransformer
    optimizer = torch.optim.AdamW(wrapper.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    rng = torch.quasirandom.SobolEngine(1, scramble=True, seed=1)
    reals = latents()

    def loss(checkpointing: bool) -> torch.Tensor:
        # Lightning's MixedPrecision plugin runs training_step under autocast (bf16 on CPU).
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision != "32"):
            return training_step_loss(checkpointing)

    def training_step_loss(checkpointing: bool) -> torch.Tensor:
        # DiffusionUncondTrainingWrapper.training_step, diffusion_objective "v".
        t = rng.draw(reals.shape[0])[:, 0]
        alphas, sigmas = get_alphas_sigmas(t)
        alphas, sigmas = alphas[:, None, None], sigmas[:, None, None]
        noise = torch.randn_like(reals)
        noised_inputs = reals * alphas + noise * sigmas
        targets = noise * alphas - reals * sigmas
        v = wrapper(noised_inputs, t, use_checkpointing=checkpointing)
        # Its MultiLoss([MSELoss("v", "targets")]) without a mask, written out: importing
        # stable_audio_tools.training.losses imports descript's `audiotools` package
        # (losses/semantic.py), which is not ours and not installed.
        return 1.0 * F.mse_loss(v, targets, reduction="none").mean()

    def step(checkpointing: bool) -> None:
        value = loss(checkpointing)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()

    for checkpointing in (True, False):
        for _ in range(args.warmup):
            step(checkpointing)
    ready = {"parameters": sum(p.numel() for p in wrapper.parameters()),
             "network_parameters": sum(p.numel() for p in network.parameters()),
             "flops": {str(c): count_flops(lambda c=c: loss(c)) for c in (True, False)}}
    optimizer.zero_grad()

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        checkpointing = request["checkpointing"]
        return {"seconds": mean_step_seconds(lambda: step(checkpointing), request["steps"])}

    serve(handle, ready)


# ------------------------------------------------------------------ main
def summary(values: list[float], fmt: str) -> str:
    return (f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-"
            f"{fmt.format(max(values))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="rounds of paired measurements")
    parser.add_argument("--steps", type=int, default=2, help="steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", choices=PRECISIONS, default="32",
                        help="both steps in fp32, or their forward under CPU bf16 autocast")
    parser.add_argument("--sat-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.sat_side:
        return sat_side(args)
    sys.path.insert(0, str(REPO))
    print(machine_line(args.threads), flush=True)
    torch.manual_seed(0)
    model, step = our_side(args.precision)
    for _ in range(args.warmup):
        step()
    flops = count_flops(step.loss)
    model.zero_grad(set_to_none=True)
    worker = PeerWorker(SAT_PYTHON, __file__, "--sat-side",
                        ["--warmup", str(args.warmup), "--precision", args.precision],
                        args.threads, "install stable-audio-tools beside the project as "
                        "scripts/check_sat_dit_parity.py describes.")
    ours_count = sum(p.numel() for p in model.parameters())
    theirs_count = worker.ready["parameters"]
    model_flops = {"audiotools": flops, "SAT default": worker.ready["flops"]["False"],
                   "SAT no checkpointing": worker.ready["flops"]["False"]}
    print(f"DiT parameters: audiotools {ours_count:,}, SAT {theirs_count:,} "
          f"({'same' if ours_count == theirs_count else 'DIFFERENT'}); batch {BATCH} x "
          f"{CHANNELS} x {FRAMES}, v objective, AdamW, precision {args.precision}",
          flush=True)
    print(f"model GFLOP per step (forward + backward): audiotools {flops / 1e9:.2f}, SAT "
          f"{model_flops['SAT no checkpointing'] / 1e9:.2f} (its default executes "
          f"{worker.ready['flops']['True'] / 1e9:.2f} with the recomputed forward)", flush=True)
    if ours_count != theirs_count:
        raise SystemExit("the two DiTs differ: fix the config before timing them")

    def measure(side: str) -> float:
        if side == "audiotools":
            return mean_step_seconds(step, args.steps)
        return worker.request(checkpointing=side == "SAT default", steps=args.steps)["seconds"]

    dtype = torch.bfloat16 if args.precision == "bf16-mixed" else torch.float32
    dtype_name = "bf16" if dtype == torch.bfloat16 else "fp32"
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    peaks: list[float] = []
    loads = [load_average()]
    for pair in range(args.pairs):
        peaks.append(matmul_peak(2048, 5, dtype))
        order = SIDES[pair % 3:] + SIDES[:pair % 3]
        for side in order:
            times[side].append(measure(side))
        print(f"round {pair + 1}: " + ", ".join(f"{side} {times[side][-1]:.3f} s"
                                                 for side in SIDES)
              + f"; peak {peaks[-1] / 1e9:.1f} GFLOP/s", flush=True)
    worker.close()
    loads.append(load_average())
    print(f"load average at start: {loads[0]}; at end: {loads[1]}")
    for side in SIDES:
        rates = [model_flops[side] / seconds for seconds in times[side]]
        fractions = [rate / peak for rate, peak in zip(rates, peaks, strict=True)]
        print(f"{side}: step {summary(times[side], '{:.3f}')} s, "
              f"{summary([r / 1e9 for r in rates], '{:.1f}')} GFLOP/s, "
              f"{summary([100 * f for f in fractions], '{:.0f}')}% of the {dtype_name} matmul peak "
              f"(median over rounds, range)")
    print(f"{dtype_name} matmul peak: {summary([p / 1e9 for p in peaks], '{:.1f}')} GFLOP/s")
    for side, goal in (("SAT default", " (goal <= 0.7)"), ("SAT no checkpointing", "")):
        ratios = [a / b for a, b in zip(times["audiotools"], times[side], strict=True)]
        print(f"audiotools / {side}: {summary(ratios, '{:.3f}')}x step time, median of "
              f"{len(ratios)} rounds{goal}")


if __name__ == "__main__":
    main()
