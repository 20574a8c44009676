"""Alignment and uniformity (Wang and Isola 2020, eq. 4-5) against loops and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from evaluation_reference import alignment as alignment_reference
from evaluation_reference import uniformity as uniformity_reference

from fmicl_registry.evaluation import EvaluationError, alignment, uniformity


def _views(n: int = 11, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z1, z1 + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)


def _regular_simplex(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """n points in R^d (n <= d + 1) with equal pairwise distances, centred, randomly rotated."""
    centred = torch.eye(n, dtype=torch.float64) - 1.0 / n  # spans an (n - 1)-dim subspace
    _, _, basis = torch.linalg.svd(centred)
    coordinates = centred @ basis[: n - 1].T  # the same points in R^(n - 1)
    embedded = torch.cat([coordinates, torch.zeros(n, d - (n - 1), dtype=torch.float64)], dim=1)
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return 3.0 * embedded @ rotation  # any length: rows are normalised


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.5, 3.0])
def test_alignment_matches_loop_reference(alpha: float) -> None:
    z1, z2 = _views()
    want = alignment_reference(z1.tolist(), z2.tolist(), alpha)
    assert alignment(z1, z2, alpha) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert alignment(z1.float(), z2.float(), alpha) == pytest.approx(want, rel=1e-5)


def test_alignment_of_identical_views_is_zero() -> None:
    z1, _ = _views()
    assert alignment(z1, z1.clone()) == 0.0
    assert alignment(z1, 5.0 * z1) == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("alpha", [2.0, 1.0])
def test_alignment_of_antipodal_views_is_the_largest(alpha: float) -> None:
    z1, _ = _views()
    assert alignment(z1, -z1, alpha) == pytest.approx(2.0**alpha, rel=1e-12)


@pytest.mark.parametrize("t", [2.0, 0.5, 7.0])
@pytest.mark.parametrize("chunk_size", [1, 3, 11, 1024])
def test_uniformity_matches_loop_reference(t: float, chunk_size: int) -> None:
    z, _ = _views()
    want = uniformity_reference(z.tolist(), t)
    assert uniformity(z, t, chunk_size=chunk_size) == pytest.approx(want, rel=1e-10)


def test_uniformity_float32_agrees_with_float64() -> None:
    z, _ = _views(n=200, d=16)
    assert uniformity(z.float(), chunk_size=64) == pytest.approx(uniformity(z), abs=1e-5)


@pytest.mark.parametrize(("n", "d"), [(2, 1), (3, 2), (4, 3), (5, 8), (16, 15), (16, 40)])
@pytest.mark.parametrize("t", [2.0, 1.0])
def test_uniformity_of_a_regular_simplex_has_its_closed_form(n: int, d: int, t: float) -> None:
    # Every pairwise squared distance of a regular simplex of n unit vectors is 2n / (n - 1).
    z = _regular_simplex(n, d)
    assert uniformity(z, t, chunk_size=3) == pytest.approx(-t * 2 * n / (n - 1), rel=1e-12)


def test_the_regular_simplex_is_the_most_uniform() -> None:
    # Lu et al. 2023 (uniformity): for N <= d + 1 points the minimum of the negative term is the
    # simplex.
    simplex = uniformity(_regular_simplex(6, 6))
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        assert uniformity(torch.randn(6, 6, generator=g, dtype=torch.float64)) > simplex


def test_uniformity_of_two_antipodal_points() -> None:
    z = torch.tensor([[0.0, 2.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    assert uniformity(z, t=3.0) == pytest.approx(-12.0, rel=1e-12)  # squared distance 4


def test_uniformity_of_collapsed_features_is_zero() -> None:
    z = torch.ones(50, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert uniformity(z) == pytest.approx(0.0, abs=1e-6)


def test_uniformity_is_stable_for_large_t() -> None:
    # exp(-t * 4) underflows double for t = 500; the log-sum-exp must not.
    z, _ = _views(n=7, d=3, seed=2)
    want = uniformity_reference(z.tolist(), 500.0)
    got = uniformity(z, 500.0)
    assert math.isfinite(got)
    assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda z: alignment(z, z[:-1]), "same shape"),
        (lambda z: alignment(z[:0], z[:0]), "empty"),
        (lambda z: alignment(z, z, alpha=0.0), "alpha"),
        (lambda z: alignment(z, z * float("inf")), "NaN or infinite"),
        (lambda z: uniformity(z[:1]), "at least 2 rows"),
        (lambda z: uniformity(z[0]), "2-D"),
        (lambda z: uniformity(z, t=-1.0), "t must be"),
        (lambda z: uniformity(z, chunk_size=0), "chunk_size"),
    ],
)
def test_invalid_inputs_name_the_problem(call, message: str) -> None:
    z, _ = _views()
    with pytest.raises(EvaluationError, match=message):
        call(z)
