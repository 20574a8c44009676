"""Positive and negative pair distances (the f-MICL paper's Figure 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evaluation_reference import distance, negative_distances, unit

from fmicl_registry.evaluation import EvaluationError, distance_distribution


def _views(n: int = 9, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z1, z1 + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float64)


def test_all_pairs_match_loop_reference() -> None:
    z1, z2 = _views()
    got = distance_distribution(z1, z2)
    want_positive = [
        distance(unit(x), unit(y)) for x, y in zip(z1.tolist(), z2.tolist(), strict=True)
    ]
    np.testing.assert_allclose(got["positive"], want_positive, rtol=1e-12, atol=1e-15)
    assert got["negative"].shape == (9 * 8,)
    np.testing.assert_allclose(got["negative"], negative_distances(z1.tolist()), rtol=1e-12)
    assert got["positive"].dtype == np.float64 and got["negative"].dtype == np.float64


def test_identical_views_and_range() -> None:
    z1, _ = _views(n=30, d=3, seed=1)
    got = distance_distribution(z1.float(), z1.float().clone())
    assert np.all(got["positive"] == 0.0)
    assert got["negative"].size == 30 * 29
    assert got["negative"].min() >= 0.0 and got["negative"].max() <= 2.0
    # Euclidean distances, not squared: antipodal rows are 2 apart.
    pair = torch.tensor([[1.0, 0.0], [-3.0, 0.0]])
    assert distance_distribution(pair, pair)["negative"].tolist() == [2.0, 2.0]


def test_subsampled_negatives_are_real_pairs_and_follow_the_seed() -> None:
    z1, z2 = _views(n=40, d=5, seed=2)
    every = distance_distribution(z1, z2)["negative"]
    first = distance_distribution(z1, z2, max_negatives=500, seed=3)
    assert first["negative"].shape == (500,)
    assert first["positive"].shape == (40,)
    # Each sampled distance is one of the N (N - 1) true ones (none is a zero self-pair).
    gaps = np.abs(first["negative"][:, None] - every[None, :]).min(axis=1)
    assert gaps.max() < 1e-12
    assert first["negative"].min() > 0.0
    again = distance_distribution(z1, z2, max_negatives=500, seed=3)
    np.testing.assert_array_equal(first["negative"], again["negative"])
    other = distance_distribution(z1, z2, max_negatives=500, seed=4)
    assert not np.array_equal(first["negative"], other["negative"])
    # Uniform over pairs: the sample's mean is close to the mean over all pairs.
    large = distance_distribution(z1, z2, max_negatives=20_000)["negative"]
    assert abs(large.mean() - every.mean()) < 0.02


def test_exactly_max_negatives_pairs_are_not_sampled() -> None:
    z1, z2 = _views(n=10)
    got = distance_distribution(z1, z2, max_negatives=90)["negative"]
    np.testing.assert_allclose(got, negative_distances(z1.tolist()), rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda z1, z2: distance_distribution(z1, z2[:, :2]), "same shape"),
        (lambda z1, z2: distance_distribution(z1[:1], z2[:1]), "at least 2 rows"),
        (lambda z1, z2: distance_distribution(z1[:0], z2[:0]), "empty"),
        (lambda z1, z2: distance_distribution(z1, z2, max_negatives=0), "max_negatives"),
    ],
)
def test_invalid_inputs_name_the_problem(call, message: str) -> None:
    z1, z2 = _views()
    with pytest.raises(EvaluationError, match=message):
        call(z1, z2)
