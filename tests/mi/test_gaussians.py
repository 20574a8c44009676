"""The correlated-Gaussian task: the MI <-> rho map, sampling and the exact log density ratio,
checked against torch.distributions (an independent implementation of the densities)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from fmicl_registry.mi import (
    log_density_ratio,
    mi_for_rho,
    pairwise_log_density_ratio,
    rho_for_mi,
    sample_joint,
    sample_product,
)


@pytest.mark.parametrize("dim", [1, 20, 128])
@pytest.mark.parametrize("mi", [0.0, 2.0, 10.0])
def test_rho_for_mi_inverts_mi_for_rho(mi: float, dim: int) -> None:
    rho = rho_for_mi(mi, dim)
    assert 0 <= rho < 1
    # rho is within 1e-9 of 1 at 10 nats in one dimension: the inverse is ill-conditioned there.
    assert mi_for_rho(rho, dim) == pytest.approx(mi, rel=1e-7, abs=1e-12)


def test_the_staircase_of_poole_et_al() -> None:
    # d = 20: 2, 4, ..., 10 nats need these correlations.
    rhos = [rho_for_mi(mi, 20) for mi in (2, 4, 6, 8, 10)]
    assert rhos == sorted(rhos)
    assert rhos[-1] == pytest.approx(math.sqrt(1 - math.exp(-1)), rel=1e-12)


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_rho_for_mi_refuses_impossible_levels(bad: float) -> None:
    with pytest.raises(ValueError, match="mutual information"):
        rho_for_mi(bad, 20)


def test_rho_must_be_a_correlation_below_one() -> None:
    x = torch.zeros(1, 2)
    for rho in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="rho"):
            log_density_ratio(x, x, rho)


def test_log_density_ratio_matches_torch_distributions() -> None:
    dim, rho = 3, 0.7
    g = torch.Generator().manual_seed(0)
    x, y = sample_joint(50, dim, rho, generator=g, dtype=torch.float64)
    eye = torch.eye(dim, dtype=torch.float64)
    cov = torch.cat([torch.cat([eye, rho * eye], 1), torch.cat([rho * eye, eye], 1)], 0)
    joint = MultivariateNormal(torch.zeros(2 * dim, dtype=torch.float64), cov)
    marginal = MultivariateNormal(torch.zeros(dim, dtype=torch.float64), eye)
    want = joint.log_prob(torch.cat([x, y], 1)) - marginal.log_prob(x) - marginal.log_prob(y)
    torch.testing.assert_close(log_density_ratio(x, y, rho), want)


def test_pairwise_ratio_is_the_ratio_of_every_pair() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = sample_joint(7, 5, 0.4, generator=g, dtype=torch.float64)
    pairs = pairwise_log_density_ratio(x, y, 0.4)
    assert pairs.shape == (7, 7)
    torch.testing.assert_close(pairs, log_density_ratio(x[:, None], y[None], 0.4))
    torch.testing.assert_close(pairs.diagonal(), log_density_ratio(x, y, 0.4))


def test_samples_have_the_stated_correlation_and_mi() -> None:
    g = torch.Generator().manual_seed(2)
    rho = rho_for_mi(4.0, 20)
    x, y = sample_joint(20000, 20, rho, generator=g, dtype=torch.float64)
    assert float((x * y).mean()) == pytest.approx(rho, abs=0.01)
    assert float(y.var()) == pytest.approx(1.0, abs=0.02)
    # E_joint log r = I(X; Y) = 4 nats, and E_product r = 1.
    assert float(log_density_ratio(x, y, rho).mean()) == pytest.approx(4.0, abs=0.05)
    xp, yp = sample_product(20000, 20, generator=g, dtype=torch.float64)
    assert float((xp * yp).mean()) == pytest.approx(0.0, abs=0.01)
