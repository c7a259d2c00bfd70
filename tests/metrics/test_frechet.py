"""Fréchet distance against closed forms, an independent formula, and its errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from audiotools.metrics.frechet import (
    GaussianStats,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
)


def _whitened(count: int, dim: int, seed: int) -> np.ndarray:
    """(count, dim) samples whose sample mean is exactly 0 and sample covariance exactly I."""
    values = np.random.default_rng(seed).standard_normal((count, dim))
    values -= values.mean(axis=0)
    return values @ np.linalg.inv(np.linalg.cholesky(np.cov(values, rowvar=False))).T


def _random_covariance(dim: int, seed: int) -> np.ndarray:
    factor = np.random.default_rng(seed).standard_normal((dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def test_identical_sets_are_at_zero():
    values = np.random.default_rng(0).standard_normal((200, 16)) * 3 + 1
    assert frechet_distance(values, values) == pytest.approx(0.0, abs=1e-8)


def test_a_shift_of_the_mean_costs_its_squared_length():
    values = np.random.default_rng(1).standard_normal((100, 8))
    shift = np.arange(8, dtype=np.float64)
    assert frechet_distance(values, values + shift) == pytest.approx(float(shift @ shift),
                                                                     rel=1e-9)


def test_diagonal_covariances_give_the_sum_of_squared_root_differences():
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 2.0])
    mean_a, mean_b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    first = _whitened(50, 4, seed=2) * np.sqrt(a) + mean_a
    second = _whitened(70, 4, seed=3) * np.sqrt(b) + mean_b
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(first, second) == pytest.approx(expected, rel=1e-9)


def test_general_covariances_match_the_trace_of_the_root_of_their_product():
    """tr sqrt(A B) from the (real, non-negative) eigenvalues of the non-symmetric A B."""
    dim = 12
    cov_a, cov_b = _random_covariance(dim, 4), _random_covariance(dim, 5)
    mean_a, mean_b = np.zeros(dim), np.full(dim, 0.5)
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b).real
    expected = (np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                - 2 * np.sqrt(eigenvalues).sum())
    first, second = GaussianStats(mean_a, cov_a, 10), GaussianStats(mean_b, cov_b, 10)
    assert frechet_distance_from_stats(first, second) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance_from_stats(second, first) == pytest.approx(expected, rel=1e-9)


def test_fewer_samples_than_dimensions_stay_finite_and_non_negative():
    rng = np.random.default_rng(6)
    distance = frechet_distance(rng.standard_normal((5, 40)), rng.standard_normal((7, 40)))
    assert np.isfinite(distance) and distance > 0


def test_torch_and_float32_inputs_give_the_float64_result():
    values = np.random.default_rng(7).standard_normal((64, 6))
    other = values[::-1] * 1.5 + 0.2
    expected = frechet_distance(values, other)
    as_torch = frechet_distance(torch.from_numpy(values).float(), torch.from_numpy(other.copy()))
    assert as_torch == pytest.approx(expected, rel=1e-5)
    stats = gaussian_stats(values)
    assert stats.count == 64 and stats.dim == 6 and stats.covariance.dtype == np.float64


@pytest.mark.parametrize("first, second, message", [
    (np.zeros((1, 4)), np.zeros((5, 4)), "at least 2 embeddings, got 1"),
    (np.zeros((5, 4)), np.zeros((5, 3)), "4 and 3 dimensions"),
    (np.zeros(5), np.zeros((5, 1)), r"expected \(N, D\) embeddings, got shape \(5,\)"),
    (np.full((3, 2), np.nan), np.zeros((3, 2)), "NaN or infinite"),
])
def test_clear_errors(first, second, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(first, second)
