"""Ground truth of the f-mutual information: the correlated-Gaussian closed forms, the general
moment formula, Monte Carlo with standard errors, an independent d = 1 integration, and the
bound at the optimal critic (it is tight, so it recovers the truth)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import fmicl_registry as fm
from fmicl_registry.mi import (
    bound_at_optimal_critic,
    closed_form_truth,
    ground_truth,
    kl_mi,
    monte_carlo_truth,
    pairwise_log_density_ratio,
    pearson_mi,
    power_log_terms,
    ratio_moment,
    rho_for_mi,
    sample_joint,
    squared_hellinger_mi,
)

# The generators of the paper's table of divergences (Lu et al. 2023), typed in by hand for
# numpy (nothing from the library).
A = 1.5
GENERATORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "kl": lambda u: u * np.log(u),
    "js": lambda u: u * np.log(u) - (u + 1) * np.log((u + 1) / 2),
    "pearson": lambda u: (u - 1) ** 2,
    "sh": lambda u: (np.sqrt(u) - 1) ** 2,
    "tsallis": lambda u: (u**A - 1) / (A - 1),
    "vlc": lambda u: (u - 1) ** 2 / (u + 1),
    "reverse_kl": lambda u: -np.log(u),
    "neyman": lambda u: (1 - u) ** 2 / u,
    "jeffrey": lambda u: (u - 1) * np.log(u),
}


def integrate_d1(f: Callable[[np.ndarray], np.ndarray], rho: float) -> float:
    """``E_{p(x)p(y)} f(r)`` for one coordinate pair, by the trapezoid rule on a wide grid.

    In rotated coordinates ``a = (x + y)/sqrt 2``, ``b = (x - y)/sqrt 2`` (independent N(0, 1)
    under the product) ``log r = -log(1 - rho^2)/2 + a^2 rho/(2(1 + rho)) - b^2 rho/(2(1 - rho))``;
    the trapezoid rule converges geometrically for such smooth, Gaussian-decaying integrands.
    """
    t = np.linspace(-16.0, 16.0, 1601)
    h = t[1] - t[0]
    a, b = np.meshgrid(t, t, indexing="ij")
    log_r = (
        -0.5 * math.log1p(-rho * rho)
        + a * a * rho / (2 * (1 + rho))
        - b * b * rho / (2 * (1 - rho))
    )
    weight = np.exp(-(a * a + b * b) / 2) / (2 * math.pi)
    return float((weight * f(np.exp(log_r))).sum() * h * h)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_truth_in_one_dimension_matches_numerical_integration(name: str) -> None:
    rho = 0.3  # below 1/2, where Neyman's chi^2 is still finite
    want = integrate_d1(GENERATORS[name], rho)
    truth = ground_truth(fm.get_divergence(name), rho, 1, samples=2**17)
    if truth.method == "closed form":
        assert truth.value == pytest.approx(want, rel=1e-8, abs=1e-12)
    else:
        assert name in ("js", "vlc")
        assert truth.reliable
        assert abs(truth.value - want) < 4 * truth.se


@pytest.mark.parametrize("dim", [2, 5, 20])
def test_the_d_dimensional_truths_follow_from_one_dimension(dim: int) -> None:
    # KL adds over independent coordinates; 1 + chi^2 and the Bhattacharyya coefficient
    # 1 - H^2/2 multiply.
    rho = 0.3
    kl_1 = integrate_d1(GENERATORS["kl"], rho)
    pearson_1 = integrate_d1(GENERATORS["pearson"], rho)
    sh_1 = integrate_d1(GENERATORS["sh"], rho)
    kl, pearson, sh = (fm.get_divergence(n) for n in ("kl", "pearson", "sh"))
    assert closed_form_truth(kl, rho, dim) == pytest.approx(dim * kl_1, rel=1e-8)
    assert closed_form_truth(pearson, rho, dim) == pytest.approx(
        (1 + pearson_1) ** dim - 1, rel=1e-8
    )
    assert closed_form_truth(sh, rho, dim) == pytest.approx(2 - 2 * (1 - sh_1 / 2) ** dim, rel=1e-8)


@pytest.mark.parametrize("mi", [0.5, 2.0, 6.0, 10.0])
def test_closed_forms_are_the_papers(mi: float) -> None:
    rho = rho_for_mi(mi, 20)
    kl, pearson, sh = (fm.get_divergence(n) for n in ("kl", "pearson", "sh"))
    assert closed_form_truth(kl, rho, 20) == pytest.approx(mi, rel=1e-12)
    assert kl_mi(rho, 20) == pytest.approx(mi, rel=1e-12)
    assert closed_form_truth(pearson, rho, 20) == pytest.approx((1 - rho**2) ** -20 - 1, rel=1e-10)
    assert pearson_mi(rho, 20) == pytest.approx(math.expm1(2 * mi), rel=1e-10)
    bc = 2 * (1 - rho**2) ** 0.25 / math.sqrt(4 - rho**2)
    assert closed_form_truth(sh, rho, 20) == pytest.approx(2 - 2 * bc**20, rel=1e-10)
    assert squared_hellinger_mi(rho, 20) == pytest.approx(2 - 2 * bc**20, rel=1e-10)


@pytest.mark.parametrize("name", ["kl", "pearson", "sh"])
@pytest.mark.parametrize("method", ["mixture", "product", "joint"])
def test_monte_carlo_agrees_with_the_closed_forms_at_small_rho(name: str, method: str) -> None:
    d = fm.get_divergence(name)
    rho, dim = 0.2, 3
    want = closed_form_truth(d, rho, dim)
    assert want is not None
    truth = monte_carlo_truth(d, rho, dim, samples=2**16, seed=3, method=method)  # type: ignore[arg-type]
    assert truth.reliable, truth.note
    assert abs(truth.value - want) < 4 * truth.se


def test_higher_log_moments_match_monte_carlo() -> None:
    # E_q[r^a (log r)^m] for m = 2 and a negative a, straight from samples.
    from fmicl_registry.mi import log_density_ratio, sample_product

    rho, dim = 0.25, 2
    x, y = sample_product(
        2**18, dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    log_r = log_density_ratio(x, y, rho)
    for a, m in [(1.0, 2), (0.5, 1), (-0.5, 0), (1.5, 2)]:
        terms = torch.exp(a * log_r) * log_r**m
        se = float(terms.std()) / math.sqrt(terms.numel())
        assert abs(ratio_moment(a, rho, dim, m) - float(terms.mean())) < 4 * se


def test_a_diverging_moment_makes_the_truth_infinite() -> None:
    neyman = fm.get_divergence("neyman")  # E_q[1/r] is finite only for rho < 1/2
    assert math.isfinite(closed_form_truth(neyman, 0.49, 20) or math.nan)
    truth = ground_truth(neyman, 0.5, 20)
    assert truth.value == math.inf
    assert not truth.reliable
    assert "infinite" in truth.note
    assert ratio_moment(-1.0, 0.5, 1) == math.inf


def test_power_log_terms_read_the_generator() -> None:
    assert power_log_terms(fm.get_divergence("kl")) == [(1.0, 1.0, 1)]
    assert sorted(power_log_terms(fm.get_divergence("tsallis")) or []) == [
        (-2.0, 0.0, 0),
        (2.0, 1.5, 0),
    ]
    assert sorted(power_log_terms(fm.get_divergence("jeffrey")) or []) == [
        (-1.0, 0.0, 1),
        (1.0, 1.0, 1),
    ]
    for name in ("js", "vlc"):
        assert power_log_terms(fm.get_divergence(name)) is None
    # A user's generator of the same shape gets an exact truth too.
    mine = fm.define_divergence("(u-1)*log(u) + 3*(sqrt(u)-1)**2", name="mine")
    rho = rho_for_mi(4.0, 20)
    want = (
        closed_form_truth(fm.get_divergence("jeffrey"), rho, 20) + 3 * squared_hellinger_mi(rho, 20)  # type: ignore[operator]
    )
    assert closed_form_truth(mine, rho, 20) == pytest.approx(want, rel=1e-12)


def test_monte_carlo_of_pearson_at_high_mi_is_flagged_unreliable() -> None:
    # The definition E_q (r - 1)^2 from product samples misses the rare huge ratios.
    pearson = fm.get_divergence("pearson")
    rho = rho_for_mi(10.0, 20)
    truth = monte_carlo_truth(pearson, rho, 20, samples=2**14, method="product")
    assert not truth.reliable
    assert "unreliable" in truth.note
    assert truth.value < 0.5 * pearson_mi(rho, 20)


def test_the_mixture_estimator_is_reliable_for_bounded_divergences_at_10_nats() -> None:
    rho = rho_for_mi(10.0, 20)
    for name in ("js", "vlc"):
        truth = ground_truth(fm.get_divergence(name), rho, 20, samples=2**15)
        assert truth.method.startswith("Monte Carlo (mixture")
        assert truth.reliable, truth.note
        assert 0 < truth.value < (2 * math.log(2) if name == "js" else 2.0)
        assert truth.se < 0.01


def test_monte_carlo_is_deterministic_under_its_seed() -> None:
    js = fm.get_divergence("js")
    first = monte_carlo_truth(js, 0.5, 4, samples=4096, seed=7)
    assert first == monte_carlo_truth(js, 0.5, 4, samples=4096, seed=7)
    assert first != monte_carlo_truth(js, 0.5, 4, samples=4096, seed=8)


# ------------------------------------------------------------------ the exact-ratio test


@pytest.mark.parametrize(
    ("name", "rho", "dim"),
    [
        ("kl", rho_for_mi(2.0, 20), 20),
        ("kl", rho_for_mi(6.0, 20), 20),
        ("sh", rho_for_mi(2.0, 20), 20),
        ("sh", rho_for_mi(10.0, 20), 20),
        # Pearson's bound has finite variance only for rho < 1/3 (E_q r^4 < inf): small rho.
        ("pearson", 0.2, 2),
        ("pearson", 0.1, 20),
    ],
    ids=["kl-2nats", "kl-6nats", "sh-2nats", "sh-10nats", "pearson-rho0.2-d2", "pearson-rho0.1"],
)
def test_the_bound_is_tight_at_the_exact_log_density_ratio(name: str, rho: float, dim: int) -> None:
    d = fm.get_divergence(name)
    value, se = bound_at_optimal_critic(d, rho, dim, samples=2**17, seed=11)
    truth = closed_form_truth(d, rho, dim)
    assert truth is not None
    assert math.isfinite(se) and se < 0.05 * max(truth, 1.0)
    assert abs(value - truth) < 4 * se, (value, truth, se)


def test_the_bound_is_tight_for_js_against_its_monte_carlo_truth() -> None:
    js = fm.get_divergence("js")
    rho = rho_for_mi(4.0, 20)
    value, se = bound_at_optimal_critic(js, rho, 20, samples=2**17, seed=12)
    truth = ground_truth(js, rho, 20, samples=2**17, seed=13)
    assert abs(value - truth.value) < 4 * math.hypot(se, truth.se)


def test_batches_of_the_benchmark_give_the_truth_at_the_exact_ratio() -> None:
    # As the benchmark builds them: positives on the diagonal of a batch of 64 joint pairs,
    # negatives off the diagonal. Averaged over many batches the bound is the true I_f.
    d = fm.get_divergence("kl")
    rho = rho_for_mi(2.0, 20)
    g = torch.Generator().manual_seed(5)
    off = ~torch.eye(64, dtype=torch.bool)
    estimates = []
    for _ in range(300):
        x, y = sample_joint(64, 20, rho, generator=g, dtype=torch.float64)
        log_r = pairwise_log_density_ratio(x, y, rho)
        estimates.append(d.lower_bound(log_r.diagonal(), log_r[off]))
    values = torch.stack(estimates)
    se = float(values.std()) / math.sqrt(values.numel())
    assert abs(float(values.mean()) - 2.0) < 4 * se
