"""The table `dora grid musicgen.*` shows: the token cross-entropy (valid: the best-state
metric) and the evaluate stage's Fréchet distance."""
from __future__ import annotations

from .._generative import GenerativeExplorer


class MusicGenExplorer(GenerativeExplorer):
    metric = "ce"
