"""Autoencoder speed on CPU: the training step of `autoencoder/base` in `precision=32` vs
`bf16-mixed`, its achieved FLOP/s as a fraction of the measured matmul peak of the same dtype,
how long the step waits on data, and the encode + decode real-time factor.

Method
- Matmul peak: square matmuls (n = 2048) in float32 and bfloat16 on this machine, same thread
  count, the best of 10: 2 n^3 / time (a peak is what the machine reaches at best; a median
  of a few moved by 25% between runs on a shared VM).
- Step: a real XP of `solver=autoencoder/base` (config composed and validated as `dora run`
  does), one batch drawn from its loader and reused; `run_step` + backward + optimizer updates
  exactly as the solver's training stage does (discriminator update, generator update, EMA),
  timed after warm-up, in rounds paired with a peak measurement. FLOPs of one step are
  counted by `torch.utils.flop_counter` (matmuls and convolutions, forward and backward;
  element-wise work is not counted, so the fraction is a lower bound).
- Data wait: one real training epoch (DataLoader with the recipe's workers); time spent blocked
  on the next batch vs the epoch's wall time.
- Real-time factor: encode + decode of 30 s of the shipped music (EMA-free fresh model, fp32,
  no grad) = seconds of audio per second of compute.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from audiotools import families
from audiotools.data.audio import audio_read
from audiotools.data.manifest import read_manifest
from audiotools.environment import resolve_path


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times)


def recipe_solver(root: Path, overrides: list[str], recipe: str = "base") -> Any:
    """(xp, solver) of `solver=autoencoder/RECIPE` with `overrides`, composed as `dora run`
    does, its XP folder under `root`."""
    from audiotools.train import main
    main.dora.dir = root / "dora"
    xp = main.get_xp([f"solver=autoencoder/{recipe}", *overrides])
    main.init_xp(xp)
    torch.manual_seed(0)
    with xp.enter():
        solver = families.build_solver(xp.cfg)
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)
    return xp, solver


def enter_train_stage(solver: Any) -> None:
    """What flashy's `run_stage("train", ...)` sets before a stage runs."""
    solver._current_stage = "train"
    solver._current_formatter = solver.get_formatter("train")


def time_steps(solver: Any, batch: dict[str, Any], steps: int, warmup: int) -> list[float]:
    """Seconds per training step (the solver's own `_run_batches` on a repeated batch)."""
    enter_train_stage(solver)
    for module in solver._registered_modules():
        module.train()
    solver._run_batches(iter([batch] * warmup), warmup)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        solver._run_batches(iter([batch]), 1)
        times.append(time.perf_counter() - start)
    return times


def step_flops(solver: Any, batch: dict[str, Any]) -> int:
    enter_train_stage(solver)
    counter = FlopCounterMode(display=False)
    with counter:
        solver._run_batches(iter([batch]), 1)
    return counter.get_total_flops()


def data_wait(solver: Any) -> tuple[float, float]:
    """(seconds blocked on the loader, epoch seconds) for one training epoch."""
    waited = 0.0
    original = solver._train_batches

    def timed() -> Iterator[Any]:
        nonlocal waited
        iterator = original()
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            waited += time.perf_counter() - start
            yield batch

    solver._train_batches = timed
    enter_train_stage(solver)
    start = time.perf_counter()
    solver.train_stage()
    return waited, time.perf_counter() - start


def real_time_factor(model: torch.nn.Module, seconds: float = 30.0) -> float:
    entries = read_manifest(str(resolve_path("//datasets/music_small/evaluate.jsonl")))
    pieces, total = [], 0
    for entry in entries:
        wav, _ = audio_read(entry["path"], sample_rate=model.sample_rate,
                            channels=model.channels)
        pieces.append(wav)
        total += wav.shape[-1]
        if total >= seconds * model.sample_rate:
            break
    audio = torch.cat(pieces, dim=-1)[:, :int(seconds * model.sample_rate)][None]
    model.eval()
    with torch.no_grad():
        model.decode(model.encode(audio[..., :model.sample_rate]))  # warm-up
        start = time.perf_counter()
        model.decode(model.encode(audio))
        elapsed = time.perf_counter() - start
    return audio.shape[-1] / model.sample_rate / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="steps timed per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}, mkldnn bf16 "
          f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    dtypes = {"32": torch.float32, "bf16-mixed": torch.bfloat16}

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {}
        for precision, dtype in dtypes.items():
            xp, solver = recipe_solver(root, [f"precision={precision}",
                                             "adversarial.warmup_steps=0"])
            with xp.enter():
                loader = solver.loaders["train"]
                loader.set_epoch(0)
                batch = next(iter(loader))
                time_steps(solver, batch, 0, args.warmup)
                flops = step_flops(solver, batch)
                # Paired rounds: the peak and the step are measured back to back, so a
                # neighbour's load on this shared machine moves both sides of each ratio.
                peaks, steps, fractions = [], [], []
                for _ in range(args.rounds):
                    peaks.append(matmul_peak(dtype))
                    steps.append(statistics.median(time_steps(solver, batch, args.steps, 0)))
                    fractions.append(flops / steps[-1] / peaks[-1])
                solver.close()
            step = statistics.median(steps)
            results[precision] = step
            print(f"matmul peak {precision}: {max(peaks) / 1e9:.1f} GFLOP/s (rounds: "
                  f"{', '.join(f'{peak / 1e9:.0f}' for peak in peaks)})")
            print(f"step {precision}: {step * 1e3:.0f} ms median of rounds ("
                  f"{min(steps) * 1e3:.0f}-{max(steps) * 1e3:.0f}), {flops / 1e9:.2f} GFLOP per "
                  f"step (batch {tuple(batch['audio'].shape)}) = "
                  f"{100 * statistics.median(fractions):.1f}% of the {precision} matmul peak, "
                  f"median of paired rounds ({100 * min(fractions):.1f}-"
                  f"{100 * max(fractions):.1f}%)")
        print(f"bf16-mixed / fp32 step time: {results['bf16-mixed'] / results['32']:.2f}x")

        xp, solver = recipe_solver(root, ["precision=32", "adversarial.warmup_steps=0"])
        with xp.enter():
            waited, epoch = data_wait(solver)
            rtf = real_time_factor(solver.model)
            solver.close()
        print(f"data wait: {waited:.2f} s of a {epoch:.1f} s training epoch = "
              f"{100 * waited / epoch:.1f}% (workers: {solver.settings.dataset.num_workers})")
        print(f"encode + decode real-time factor (fp32, 30 s): {rtf:.1f}x real time")


if __name__ == "__main__":
    main()
