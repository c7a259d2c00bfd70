"""The precision a run computes in: `auto` resolved for the device, the autocast context, and a
warning before training when the device computes the chosen precision slower than float32.

Mixed precision is a speed choice, so a CPU that has no fast arithmetic for it (float16 on any
of our CPUs: a dilated Conv2d took 1.76 s in float16 against 0.09 s in float32; bfloat16 without
AVX-512 BF16 / AMX: 4-7x slower) turns a setting meant to save time into one that wastes it.
The slowdown is measured on the device, by a probe well under a second long, not guessed.
"""
from __future__ import annotations

import contextlib
import logging
import time

import torch

logger = logging.getLogger(__name__)

DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
# Slower than float32 by this factor or more: the warning is worth a line in every run's log.
SLOW_FACTOR = 1.5
_PROBE_SECONDS = 0.1


def computes_in_bf16(device: torch.device) -> bool:
    """Whether `device` has bf16 arithmetic (a CPU: AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def cpu_slowdown(dtype: torch.dtype) -> float:
    """How many times slower a small dilated convolution runs under CPU autocast to `dtype`
    than in float32 (best of a few timings each, about 0.2 s in all where float16 is slow). Its
    inputs come from a private generator: the run's RNG streams are left untouched."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(1, 32, 2048, generator=generator)
    weight = torch.randn(32, 32, 7, generator=generator)

    def best_time(context: contextlib.AbstractContextManager) -> float:
        """Best of up to 10 timings within ~0.1 s, after one call that warms the kernels up."""
        timings: list[float] = []
        with torch.no_grad(), context:
            torch.nn.functional.conv1d(inputs, weight, padding=9, dilation=3)
            while len(timings) < 10 and sum(timings) < _PROBE_SECONDS:
                start = time.perf_counter()
                torch.nn.functional.conv1d(inputs, weight, padding=9, dilation=3)
                timings.append(time.perf_counter() - start)
        return min(timings)

    slow = best_time(torch.autocast("cpu", dtype=dtype))
    return slow / max(best_time(contextlib.nullcontext()), 1e-9)


def resolve_precision(requested: str, device: torch.device) -> str:
    """`requested` with `auto` resolved (bf16-mixed where the device computes in bf16, else
    32; logged), after warning when a mixed precision is slow on this CPU."""
    auto = "bf16-mixed" if computes_in_bf16(device) else "32"
    precision = auto if requested == "auto" else requested
    if requested == "auto":
        logger.info("precision=auto: %s on this %s.", precision, device.type)
    if precision in DTYPES and device.type == "cpu":
        factor = cpu_slowdown(DTYPES[precision])
        if factor >= SLOW_FACTOR:
            logger.warning(_slow_precision_message(requested, precision, factor, auto))
    return precision


def _slow_precision_message(requested: str, precision: str, factor: float, auto: str) -> str:
    """What a run in a slow `precision` is told: the measured factor and what to set instead."""
    remedies = ["precision=32"]
    if requested != "auto" and auto != precision:
        remedies.append(f"precision=auto ({auto} on this CPU)")
    chosen = f"precision={requested}"
    if requested != precision:
        chosen += f" (resolved to {precision})"
    dtype = str(DTYPES[precision]).removeprefix("torch.")
    return (f"{chosen}: this CPU ({torch.backends.cpu.get_cpu_capability()}) computes {dtype} "
            f"{factor:.1f}x slower than float32 (measured on a small convolution), so training "
            f"will be slower, not faster; set {' or '.join(remedies)}.")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a step runs in: nothing for 32, autocast to bf16/fp16 for mixed."""
    if precision not in DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])
