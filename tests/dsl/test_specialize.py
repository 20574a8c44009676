"""Range-specialised composed terms (``Divergence.terms_on``, ``stabilize.specialize``).

A similarity declares the range of its values (the f-Gaussian log ratio: ``[log mu - 4 gamma,
log mu]``); on that range a term often needs one form where [-80, 80] needs several. The
specialised terms must be the same functions (float64, values and gradients), as accurate in
float32 as the general ones against the paper's textbook formulas (independent, 120-digit
mpmath), keep several forms where one does not suffice, and be what the objective uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
import torch
from textbook import TEXTBOOK
from torch.func import grad, jvp, vmap

import fmicl_registry as fm
from fmicl_registry.dsl import ops, stabilize
from fmicl_registry.dsl.parse import U
from fmicl_registry.objectives.fmicl import critic_terms
from fmicl_registry.similarities import Gaussian

FLOAT32_MAX = float(torch.finfo(torch.float32).max)
FLOAT32_TINY = float(torch.finfo(torch.float32).tiny)
#: The f-Gaussian ranges of the paper's settings (gamma = 1 vision, 20 text; mu = 1), one with
#: mu = 2, and [-80, 80], where VLC needs several forms.
RANGES = [(-4.0, 0.0), (-80.0, 0.0), (math.log(2.0) - 8.0, math.log(2.0))]
TERMS = ("positive", "negative")
Exact = Callable[[mpmath.mpf], mpmath.mpf]


def _points(low: float, high: float, count: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    inside = rng.uniform(low, high, count)
    near_zero = rng.choice([-1, 1], 8) * 10 ** rng.uniform(-7, -1, 8)
    near_zero = near_zero[(near_zero >= low) & (near_zero <= high)]
    return np.concatenate([[low, high], inside, near_zero]).astype(np.float32)


def _general(d: fm.Divergence, term: str) -> ops.Fn:
    return d.positive_term if term == "positive" else d.negative_term


@pytest.mark.parametrize(("low", "high"), RANGES)
def test_specialised_terms_equal_the_general_ones_in_float64(
    catalog_name: str, low: float, high: float
) -> None:
    d = fm.get_divergence(catalog_name)
    terms = d.terms_on(low, high)
    x = torch.tensor(_points(low, high, 200), dtype=torch.float64)
    for term in TERMS:
        specialised = getattr(terms, term)
        values = []
        for fn in (specialised, _general(d, term)):
            xi = x.clone().requires_grad_()
            y = fn(xi)
            (slope,) = torch.autograd.grad(y.sum(), xi)
            values.append((y.detach(), slope))
        (y, slope), (want, want_slope) = values
        torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-300)
        torch.testing.assert_close(slope, want_slope, rtol=1e-12, atol=1e-300)


def _reference(fn: Exact, x: float) -> tuple[float, float]:
    with mpmath.workdps(120):
        return float(fn(mpmath.mpf(x))), float(mpmath.diff(fn, mpmath.mpf(x)))


def _error(got: float, want: float) -> float:
    if not np.isfinite(want) or abs(want) > FLOAT32_MAX:
        return 0.0  # not representable in float32: nothing to ask
    if not np.isfinite(got):
        return math.inf
    if abs(want) < FLOAT32_TINY:
        return 0.0 if abs(got - want) <= FLOAT32_TINY else math.inf
    return abs(got - want) / abs(want)


def _float32_errors(fn: ops.Fn, exact: Exact, points: np.ndarray) -> list[str]:
    x = torch.tensor(points, dtype=torch.float32, requires_grad=True)
    y = fn(x)
    assert y.dtype == torch.float32
    (slope,) = torch.autograd.grad(y.sum(), x)
    y = y.detach()
    problems = []
    for i, point in enumerate(points):
        want, want_slope = _reference(exact, float(point))
        for what, got, ref in (("value", y[i], want), ("gradient", slope[i], want_slope)):
            error = _error(float(got), ref)
            if error > 1e-5:
                problems.append(f"log_r={float(point)!r} {what}: error {error:.1e}")
    return problems


@pytest.mark.parametrize(("low", "high"), [*RANGES, (-80.0, 80.0)])
def test_specialised_terms_meet_the_float32_target_against_the_textbook(
    catalog_name: str, low: float, high: float
) -> None:
    d = fm.get_divergence(catalog_name)
    terms = d.terms_on(low, high)
    fp, fstar = TEXTBOOK[catalog_name]
    exact = {
        "positive": lambda x: fp(mpmath.exp(x)),
        "negative": lambda x: fstar(fp(mpmath.exp(x))),
    }
    points = _points(low, high, seed=int(abs(low) * 10))
    problems = []
    for term in TERMS:
        problems += [
            f"{term}: {p}" for p in _float32_errors(getattr(terms, term), exact[term], points)
        ]
    assert not problems, f"{catalog_name} on [{low}, {high}]:\n" + "\n".join(problems[:10])
    assert max(terms.accuracy.values()) <= 1e-5  # what specialize measured itself


def test_vlc_needs_one_form_per_term_on_the_f_gaussian_ranges() -> None:
    vlc = fm.get_divergence("vlc")
    general_forms = {how for _, _, _, how in vlc.pieces["negative_term"]}
    assert len(general_forms) == 2  # one accurate near log_r = 0, one in the tails
    for low, high in RANGES:
        terms = vlc.terms_on(low, high)
        for name, pieces in terms.pieces.items():
            assert len(pieces) == 1, (low, high, name, pieces)
            assert pieces[0][:2] == (-math.inf, math.inf)
        # One form: the compiled function of that form itself, no masks around it.
        assert terms.negative.value.__name__.startswith("negative_term_form")


def test_a_range_no_single_form_covers_keeps_the_forms_it_needs() -> None:
    # log_r in [-80, 80] (gamma = 40, mu = e^80): VLC's composed terms need a form accurate
    # around log_r = 0 and another in the tails, as on the general range.
    vlc = fm.get_divergence("vlc")
    terms = vlc.terms_on(-80.0, 80.0)
    for name in ("positive_term", "negative_term"):
        forms = {how for _, _, how in terms.pieces[name]}
        assert len(forms) == 2, (name, terms.pieces[name])
    # Joined with masks: no NaN leaks into the gradient from the form not used at a point.
    x = torch.tensor([-80.0, -30.0, -1e-4, 0.0, 1e-4, 30.0, 80.0], requires_grad=True)
    for term in (terms.positive, terms.negative):
        y = term(x)
        (slope,) = torch.autograd.grad(y.sum(), x)
        assert torch.isfinite(y).all() and torch.isfinite(slope).all()
    assert torch.isnan(terms.negative(torch.tensor([math.nan, 0.5]))).tolist() == [True, False]


def test_specialize_measures_the_range_it_is_given() -> None:
    # stabilize.specialize on its own: the VLC positive term, written as forms of u.
    u = U
    term = stabilize.choose((u**2 + 2 * u - 3) / (u + 1) ** 2)
    one = stabilize.specialize(term, -4.0, 0.0)
    assert len(one.pieces) == 1 and one.max_rel_error <= stabilize.TOLERANCE
    assert (one.low, one.high) == (-4.0, 0.0)
    wide = stabilize.specialize(term, -80.0, 80.0)
    assert len({k for _, _, k in wide.pieces}) == 2
    assert wide.pieces[0][0] == -math.inf and wide.pieces[-1][1] == math.inf
    with pytest.raises(ValueError, match="finite range"):
        stabilize.specialize(term, -math.inf, 0.0)
    grid = stabilize.range_grid(-4.0, 0.0)
    assert grid.min() == -4.0 and grid.max() == 0.0 and len(grid) > 257


def test_terms_on_is_cached_and_infinite_ranges_give_the_general_forms() -> None:
    d = fm.get_divergence("vlc")
    assert d.terms_on(-4.0, 0.0) is d.terms_on(-4, 0)
    general = d.terms_on(-math.inf, math.inf)
    assert general.positive.value is d.positive_term.value
    assert general.negative.slope is d.negative_slope
    with pytest.raises(ValueError, match="low <= high"):
        d.terms_on(1.0, 0.0)


@pytest.mark.parametrize(("gamma", "mu"), [(1.0, 1.0), (20.0, 1.0), (0.5, 3.0)])
def test_the_objective_uses_the_terms_of_the_similarity_range(gamma: float, mu: float) -> None:
    objective = fm.get_objective("fmicl", divergence="vlc", gamma=gamma, mu=mu)
    low, high = objective.similarity.value_range()
    assert (low, high) == pytest.approx((math.log(mu) - 4 * gamma, math.log(mu)))
    positive, negative = critic_terms(objective.divergence, objective.similarity)
    terms = objective.divergence.terms_on(low, high)
    assert positive is terms.positive and negative is terms.negative
    assert len(terms.pieces["negative_term"]) == 1  # one form, where [-80, 80] needs two


def test_a_learning_similarity_gets_the_general_forms() -> None:
    class Learnable(Gaussian):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.tensor(1.0, requires_grad=True)

    d = fm.get_divergence("vlc")
    positive, negative = critic_terms(d, Learnable())
    assert negative.value is d.negative_term.value and positive.slope is d.positive_slope


def test_sloped_terms_work_under_torch_func(catalog_name: str) -> None:
    d = fm.get_divergence(catalog_name)
    terms = d.terms_on(-4.0, 0.0)
    x = torch.tensor([-3.5, -1.0, -0.01], dtype=torch.float64)
    for term, slope in ((terms.positive, d.positive_slope), (terms.negative, d.negative_slope)):
        torch.testing.assert_close(vmap(grad(term))(x), slope(x), rtol=1e-12, atol=0)
        _, tangent = jvp(term, (x,), (torch.ones_like(x),))
        torch.testing.assert_close(tangent, slope(x), rtol=1e-12, atol=0)
    # Second derivatives go through autograd of the slope.
    u = torch.exp(x)
    second = vmap(grad(grad(terms.positive)))(x)
    want = u * d.f_second(u) + u**2 * vmap(grad(d.f_second))(u)  # d/dx (u f''(u))
    torch.testing.assert_close(second, want, rtol=1e-9, atol=1e-12)


def test_piecewise_joins_and_passes_nan() -> None:
    f = ops.piecewise(
        [(-math.inf, 0.0, torch.exp), (0.0, 1.0, torch.neg), (1.0, math.inf, torch.exp)]
    )
    x = torch.tensor([-1.0, 0.5, 2.0, math.nan])
    want = torch.tensor([math.exp(-1.0), -0.5, math.exp(2.0), math.nan])
    torch.testing.assert_close(f(x), want, equal_nan=True)
    assert ops.piecewise([(-math.inf, math.inf, torch.exp)]) is torch.exp


def test_plain_expm1_has_the_same_value() -> None:
    x = torch.linspace(-30, 30, 61)
    with ops.plain():
        fast = ops.expm1(x)
    assert torch.equal(fast, ops.expm1(x))
