"""How a discrete codec uses its codebooks, from the codes it gave over a whole split.

A language model over the codes can only use what the codec uses: a codebook whose
perplexity is far below its size wastes bits, and a code never chosen is dead weight (its
row of the LM's embedding and head is never trained).
"""
from __future__ import annotations

import torch


def code_counts(tokens: torch.Tensor, cardinality: int) -> torch.Tensor:
    """(K, cardinality) float64 counts of each code per codebook in tokens (B, K, frames)."""
    codebooks = tokens.shape[1]
    flat = tokens.transpose(0, 1).reshape(codebooks, -1).cpu()
    offsets = torch.arange(codebooks)[:, None] * cardinality
    counts = torch.bincount((flat + offsets).flatten(), minlength=codebooks * cardinality)
    return counts.reshape(codebooks, cardinality).double()


def codebook_statistics(counts: torch.Tensor) -> dict[str, float]:
    """`perplexity_q{k}` (exp of the entropy of codebook k's code distribution: its size when
    every code is equally used) and `unused_codes_q{k}` (codes never chosen), k from 0."""
    statistics: dict[str, float] = {}
    for k, row in enumerate(counts):
        probabilities = row / row.sum().clamp_min(1)
        entropy = -(probabilities * probabilities.clamp_min(1e-30).log()).sum()
        statistics[f"perplexity_q{k}"] = float(entropy.exp())
        statistics[f"unused_codes_q{k}"] = float((row == 0).sum())
    return statistics
