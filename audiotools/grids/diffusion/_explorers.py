"""The table `dora grid diffusion.*` shows: the denoising loss (valid: at fixed noise
levels, the best-state metric) and the evaluate stage's Fréchet distance."""
from __future__ import annotations

from .._generative import GenerativeExplorer


class DiffusionExplorer(GenerativeExplorer):
    metric = "loss"
