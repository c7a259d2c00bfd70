"""Fréchet distance between two sets of embeddings, each summarised by a Gaussian.

    FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a^1/2 S_b S_a^1/2)

The last term is tr sqrt(S_a S_b) written with symmetric matrices only: S_a^1/2 comes from
a symmetric eigen-decomposition and so does the square root of S_a^1/2 S_b S_a^1/2 (positive
semi-definite), so no general (non-symmetric) matrix square root is needed, and eigenvalues
that rounding makes slightly negative are clipped to zero instead of turning complex.
Statistics are float64: float32 covariances of a few hundred dimensions lose the small
eigenvalues that the trace term sums.

FD depends on the number of embeddings (a finite set's covariance is noisy, which adds to
the distance), so two figures compare only at equal set sizes; `generation_report` prints
the sizes beside the figures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

Embeddings = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class GaussianStats:
    """Mean (D,) and covariance (D, D) of a set of embeddings, and how many there were."""

    mean: np.ndarray
    covariance: np.ndarray
    count: int

    @property
    def dim(self) -> int:
        return self.mean.shape[0]


def gaussian_stats(embeddings: Embeddings, name: str = "embeddings") -> GaussianStats:
    """Statistics of (N, D) embeddings with N >= 2 (unbiased covariance, float64); computed
    once for a reference set and reused against every set compared with it."""
    values = (embeddings.detach().cpu().double().numpy() if isinstance(embeddings, torch.Tensor)
              else np.asarray(embeddings, dtype=np.float64))
    if values.ndim != 2:
        raise ValueError(f"{name}: expected (N, D) embeddings, got shape {values.shape}.")
    if values.shape[0] < 2:
        raise ValueError(f"{name}: a covariance needs at least 2 embeddings, got "
                         f"{values.shape[0]}.")
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: embeddings contain NaN or infinite values.")
    return GaussianStats(values.mean(axis=0), np.cov(values, rowvar=False).reshape(
        values.shape[1], values.shape[1]), values.shape[0])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_stats(a: GaussianStats, b: GaussianStats) -> float:
    """FD between two Gaussians; >= 0, 0 for identical statistics."""
    if a.dim != b.dim:
        raise ValueError(f"Fréchet distance of embeddings of different sizes: {a.dim} and "
                         f"{b.dim} dimensions.")
    root_a = _psd_sqrt(a.covariance)
    middle = root_a @ b.covariance @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_root = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    distance = (float(np.sum((a.mean - b.mean) ** 2)) + float(np.trace(a.covariance))
                + float(np.trace(b.covariance)) - 2.0 * trace_root)
    return max(distance, 0.0)


def frechet_distance(a: Embeddings, b: Embeddings) -> float:
    """FD between two sets of (N, D) embeddings (N may differ, D may not)."""
    return frechet_distance_from_stats(gaussian_stats(a, "first set"),
                                       gaussian_stats(b, "second set"))
