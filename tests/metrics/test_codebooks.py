"""Per-codebook statistics of a discrete codec's codes."""
from __future__ import annotations

import math

import pytest
import torch

from audiotools.metrics.codebooks import code_counts, codebook_statistics


def test_counts_per_codebook():
    tokens = torch.tensor([[[0, 1, 1], [3, 3, 3]]])  # (B=1, K=2, frames=3)
    counts = code_counts(tokens, 4)
    assert counts.tolist() == [[1, 2, 0, 0], [0, 0, 0, 3]]


def test_perplexity_and_unused_codes():
    counts = torch.tensor([[5.0, 5.0, 5.0, 5.0], [10.0, 0.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.0]])
    stats = codebook_statistics(counts)
    assert stats["perplexity_q0"] == pytest.approx(4.0)
    assert stats["perplexity_q1"] == pytest.approx(1.0)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert stats["perplexity_q2"] == pytest.approx(math.exp(entropy))
    assert [stats[f"unused_codes_q{k}"] for k in range(3)] == [0, 3, 2]
