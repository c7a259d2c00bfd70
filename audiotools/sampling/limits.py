"""Bounds of the sampling settings every entry point (pipelines, commands, the web UI, the
solvers' generate stages) refuses past, with a message naming the setting: beyond them a
request overflows float32 or runs for days instead of failing at once."""
from __future__ import annotations

# Guidance of 1 to about 20 is the useful range; at 1e38 the guided logits or velocities of
# float32 overflow to inf, and far before that every sample is saturated noise.
MAX_CFG_SCALE = 1000.0
# Diffusion sampler steps: at 10,000 steps the time grid is 1e-4 apart, past any use; 1e12
# steps tried to allocate the grid (8 TB).
MAX_STEPS = 10_000
# The longest clip a diffusion model's inference makes unless told more (`max_duration`):
# the network's cost grows with the square of the length, so a mistyped duration (600 s for
# 60) is refused instead of running for hours; the LM's is AudioCraft's 30 s.
DEFAULT_MAX_DURATION = 300.0
