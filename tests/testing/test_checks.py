"""fmicl_registry.testing: the catalog passes, every property can fail, the pytest fixture."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import sympy as sp
import torch
from hypothesis import given, settings

import fmicl_registry as fm
from fmicl_registry.divergence import AccuracyWarning
from fmicl_registry.testing import (
    CheckReport,
    PropertyResult,
    check_divergence,
    strategies,
)
from fmicl_registry.testing.checks import PROPERTIES

pytest_plugins = ["pytester"]

EXAMPLES = 50  # per property; a broken property fails within a few examples
#: The properties that test the composed terms in float32/bfloat16 against the mpmath reference
#: at fixed points first: a failure there reports the worst point, not a hypothesis example.
FLOAT32 = {"float32_values", "float32_gradients", "float32_slopes", "bfloat16_finite"}
#: Skew Jensen-Shannon (issue 11): ``f'`` cancels near log_r = 0.
SKEW_JS = "p*u*log(u) - (p*u + 1 - p)*log(p*u + 1 - p)"


class Patched:
    """A divergence with some attributes replaced; everything else comes from ``base``.

    Needed for the symbolic views, which are properties of ``Divergence`` (the compiled ones are
    plain instance attributes and can simply be assigned on a fresh instance).
    """

    def __init__(self, base: fm.Divergence, **overrides: Any) -> None:
        self._base = base
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


def result(report: CheckReport, name: str) -> PropertyResult:
    return next(r for r in report.results if r.name == name)


# ---------------------------------------------------------------------------- sound divergences
def test_catalog_divergence_passes(catalog_name: str) -> None:
    report = check_divergence(catalog_name, max_examples=EXAMPLES)
    assert report.passed
    assert [r.name for r in report.results] == list(PROPERTIES)


@pytest.mark.parametrize("a", [0.5, 3])
def test_user_defined_family_passes(a: float) -> None:
    d = fm.define_divergence("u**a/(a-1)", name=f"tsallis_{a}", params={"a": a}, normalize=True)
    assert check_divergence(d, max_examples=EXAMPLES).passed


def test_report_prints_one_line_per_property() -> None:
    report = check_divergence("kl", max_examples=5)
    lines = str(report).splitlines()
    assert lines[0] == f"check_divergence('kl'): {len(PROPERTIES)}/{len(PROPERTIES)} passed"
    assert len(lines) == 1 + len(PROPERTIES)
    assert all(line.split()[0] == "PASS" for line in lines[1:])
    assert all(r.detail == "" for r in report.results)


# ---------------------------------------------------------------------------- broken divergences
def _shift(fn: Callable[[torch.Tensor], torch.Tensor], by: float) -> Any:
    return lambda x: fn(x) + by


def _broken_generator() -> Any:
    kl = fm.get_divergence("kl")
    return Patched(kl, generator=kl.generator + 1)  # compiled f still has f(1) = 0


def _broken_f() -> fm.Divergence:
    d = fm.get_divergence("kl")
    d.f = _shift(d.f, 0.1)  # f(1) = 0.1: u f' - f and Fenchel-Young equality notice too
    return d


def _non_convex() -> fm.Divergence:
    # KL - 2 (u - 1)^2, with consistent f_prime and f_second: f'' = 1/u - 4 < 0 for u > 1/4.
    d = fm.get_divergence("kl")
    f, fp, fs = d.f, d.f_prime, d.f_second
    d.f = lambda u: f(u) - 2 * (u - 1) ** 2
    d.f_prime = lambda u: fp(u) - 4 * (u - 1)
    d.f_second = _shift(fs, -4.0)
    return d


def _wiggly_f_prime() -> fm.Divergence:
    d = fm.get_divergence("kl")
    fp = d.f_prime
    # (1 + 0.3 cos(3 log u)) / u > 0: still increasing, but no longer the gradient of f
    d.f_prime = lambda u: fp(u) + 0.1 * torch.sin(3 * torch.log(u))
    return d


def _wrong_f_second() -> fm.Divergence:
    d = fm.get_divergence("kl")
    fs = d.f_second
    d.f_second = lambda u: 1.01 * fs(u)  # used by nothing but the autodiff comparison
    return d


def _f_star_too_small_far_left() -> fm.Divergence:
    # KL / 100 has f' = log(u) / 100, within [-0.8, 0.8] for |log_r| <= 80, while its domain is
    # the whole line: only the inequality, drawing t from [-50, 50], sees t < -1.
    d = fm.define_divergence("(u*log(u) - u + 1)/100", name="kl_over_100")
    fst = d.f_star
    d.f_star = lambda t: torch.where(t < -1, fst(t) - 1e3, fst(t))
    return d


def _f_star_too_large() -> fm.Divergence:
    d = fm.get_divergence("kl")
    d.f_star = _shift(d.f_star, 0.01)  # still an upper bound, so the inequality holds
    return d


def _f_star_wrong_far_right() -> fm.Divergence:
    # Only for t > 15: beyond f'(u) <= log(1e4) + 1 on the ratios, so only positive_term
    # (at log_r > 14) reaches it; still an upper bound, so the inequality holds.
    d = fm.get_divergence("kl")
    fst = d.f_star
    d.f_star = lambda t: torch.where(t > 15, 1.001 * fst(t), fst(t))
    return d


def _positive_term_sign_error() -> fm.Divergence:
    d = fm.get_divergence("kl")
    pt = d.positive_term
    d.positive_term = lambda s: torch.where(s > 20, -pt(s), pt(s))  # a wrong stable piece
    return d


def _vlc_paper_negative_term() -> fm.Divergence:
    # Lu et al. 2023: the paper's table of divergences gives f*(f'(u)) = 3 - 4/(u+1) for VLC.
    d = fm.get_divergence("vlc")
    d.negative_term = lambda s: 3 - 4 / (torch.exp(s) + 1)
    return d


def _defined(text: str, name: str, **params: float) -> fm.Divergence:
    """A user's definition, whether or not the library finds stable forms for it today."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccuracyWarning)
        return fm.define_divergence(text, name=name, params=params)


def _naive_skew_js_positive_term() -> fm.Divergence:
    # The literal f'(e^x) = p (x - log(p e^x + 1 - p)): right in exact arithmetic, but in float32
    # x - log(...) cancels near x = 0 (35-42% error at x = +-1e-6), and its gradient
    # p (1 - p e^x / (p e^x + 1 - p)) cancels in the right tail.
    d = _defined(SKEW_JS, "skew_js", p=0.3)
    d.positive_term = lambda s: 0.3 * (s - torch.log(0.3 * torch.exp(s) + 0.7))
    return d


def _factor_near_zero() -> fm.Divergence:
    # JS's positive term (exactly 0 at log_r = 0) off by 1e-4 relative for |log_r| < 1e-4, in
    # float32 only, as float32 cancellation is: 10x the float32 target, and invisible to the
    # properties that run in float64.
    d = fm.get_divergence("js")
    pt = d.positive_term

    def off(s: torch.Tensor) -> torch.Tensor:
        if s.dtype != torch.float32:
            return pt(s)
        return torch.where(s.abs() < 1e-4, (1 + 1e-4) * pt(s), pt(s))

    d.positive_term = off
    return d


class _WrongBackward(torch.autograd.Function):
    """KL's positive term ``1 + log_r`` with the right value and the gradient 1.001 (not 1)."""

    @staticmethod
    def forward(ctx: Any, log_r: torch.Tensor) -> torch.Tensor:
        return 1 + log_r

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return 1.001 * grad


def _wrong_gradient() -> fm.Divergence:
    d = fm.get_divergence("kl")
    d.positive_term = _WrongBackward.apply
    return d


def _wrong_slope() -> fm.Divergence:
    d = fm.get_divergence("kl")
    slope = d.negative_slope
    d.negative_slope = lambda s: torch.where(s > 30, 1.01 * slope(s), slope(s))
    return d


def _infinite_in_bfloat16() -> fm.Divergence:
    # Stands for a form whose intermediate rounds to 0 in bfloat16's 8-bit mantissa (and so
    # log(0) = -inf) where float32 keeps it apart; simulated by the dtype, as it is rare in a
    # form that is also accurate in float32.
    d = fm.get_divergence("kl")
    pt = d.positive_term
    d.positive_term = lambda s: (
        pt(s) / (s > 3).logical_not() if s.dtype == torch.bfloat16 else pt(s)
    )
    return d


def _nan_in_the_tail() -> fm.Divergence:
    d = fm.get_divergence("kl")
    pt = d.positive_term
    d.positive_term = lambda s: torch.where(s > 70, math.nan, pt(s))
    return d


def _definition_missed_its_target() -> Any:
    # What define_divergence reported (and warned about) for skew JS before the stable forms.
    kl = fm.get_divergence("kl")
    return Patched(kl, accuracy={"positive_term": 1.0, "negative_term": 1.7e-7})


# case: (build, the properties that fail (and no others), text expected in some of their details)
BROKEN: dict[str, tuple[Callable[[], Any], set[str], dict[str, str]]] = {
    "generator f(1) != 0": (
        _broken_generator,
        {"normalized", "float32_values"},  # the reference is the generator: u f' - f = u - 1
        {
            "normalized": "has f(1) = 1, not 0",
            "float32_values": "FAIL negative_term vs u f'(u) - f(u): worst relative error 1e+30 "
            "at log_r = 0.0: got 1, want 0 (",
        },
    ),
    "compiled f(1) != 0": (
        _broken_f,
        {"normalized", "fenchel_young_equality", "negative_term_composition"},
        {"normalized": "the compiled f(1.0) = 0.1"},
    ),
    "non-convex f": (
        _non_convex,
        {
            "convex_midpoint",
            "convex_second_derivative",
            "monotone_derivative",
            "fenchel_young_inequality",
            "fenchel_young_equality",
            "positive_term_composition",
            "negative_term_composition",
        },
        {
            "convex_midpoint": "f is not convex between a = ",
            "convex_second_derivative": " < 0 at u = ",
            "monotone_derivative": "f' decreases: f_prime(",
        },
    ),
    "f_prime not grad f": (
        _wiggly_f_prime,
        {
            "autodiff_derivatives",
            "fenchel_young_equality",
            "positive_term_composition",
            "negative_term_composition",
        },
        {"autodiff_derivatives": "but torch.func.grad(f"},
    ),
    "f_second wrong": (
        _wrong_f_second,
        {"autodiff_derivatives"},
        {"autodiff_derivatives": "but torch.func.grad(f_prime)"},
    ),
    "f_star too small": (
        _f_star_too_small_far_left,
        {"fenchel_young_inequality"},
        {"fenchel_young_inequality": "f_star is too small"},
    ),
    "f_star too large": (
        _f_star_too_large,
        {"fenchel_young_equality", "negative_is_conjugate"},
        {"fenchel_young_equality": "f(u) + f*(f'(u)) != u f'(u)"},
    ),
    "f_star wrong at large t": (
        _f_star_wrong_far_right,
        {"negative_is_conjugate"},
        {"negative_is_conjugate": "but f_star(positive_term("},
    ),
    "positive_term sign error": (
        _positive_term_sign_error,
        {
            "positive_term_composition",
            "negative_is_conjugate",
            "float32_values",
            "float32_gradients",
        },
        {
            "positive_term_composition": "but f_prime(exp(",
            "float32_values": "FAIL positive_term vs f'(u): worst relative error 2 at log_r = "
            "20.25: got -21.25, want 21.25 (",
            "float32_gradients": "FAIL d positive_term / d log_r (autograd) vs u f''(u): worst "
            "relative error 2 at log_r = 20.25: got -1, want 1 (",
        },
    ),
    "negative_term from the paper's VLC table": (
        _vlc_paper_negative_term,
        {
            "negative_term_composition",
            "negative_is_conjugate",
            "float32_values",
            "float32_gradients",
        },
        {
            "negative_term_composition": "negative_term(0.0) = 1.0 but u f'(u) - f(u)",
            "float32_values": "FAIL negative_term vs u f'(u) - f(u): worst relative error 1e+30 "
            "at log_r = 0.0: got 1, want 0 (",
        },
    ),
    "positive_term off by 1e-4 near log_r = 0 only": (
        _factor_near_zero,
        {"float32_values", "float32_gradients"},  # the float64 properties miss it
        {
            "float32_values": "FAIL positive_term vs f'(u): worst relative error 0.0001 at "
            "log_r = -1e-05: got -5.00051283e-06, want -5.000012374e-06 (",
            "float32_gradients": "FAIL d positive_term / d log_r (autograd) vs u f''(u): worst "
            "relative error 0.0001 at log_r = ",
        },
    ),
    "right value, wrong autograd gradient": (
        _wrong_gradient,
        {"float32_gradients"},
        {
            "float32_gradients": "FAIL d positive_term / d log_r (autograd) vs u f''(u): worst "
            "relative error 0.001 at log_r = -80.0: got 1.00100005, want 1 (479 of 479 points",
        },
    ),
    "negative_slope wrong in the right tail": (
        _wrong_slope,
        {"float32_slopes"},
        {
            "float32_slopes": "FAIL negative_slope vs u^2 f''(u): worst relative error 0.01 at "
            "log_r = ",
        },
    ),
    "positive_term NaN in the right tail": (
        _nan_in_the_tail,
        {
            "positive_term_composition",
            "negative_is_conjugate",
            "float32_values",
            "float32_gradients",
            "bfloat16_finite",
        },
        {"float32_values": "FAIL positive_term vs f'(u): worst relative error inf at log_r = "},
    ),
    "positive_term infinite in bfloat16": (
        _infinite_in_bfloat16,
        {"bfloat16_finite"},
        {
            "bfloat16_finite": "FAIL positive_term vs f'(u): not finite at log_r = 4.0: got inf, "
            "want 5 (",
        },
    ),
    "the definition missed its accuracy target": (
        _definition_missed_its_target,
        {"definition_accuracy"},
        {
            "definition_accuracy": "found float32 relative errors above its target 1e-05 on "
            "log_r in [-80, 80]: positive_term 1 ("
        },
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_divergence_fails_the_right_properties(case: str) -> None:
    build, expected, texts = BROKEN[case]
    report = check_divergence(build(), max_examples=EXAMPLES, raise_on_failure=False)
    assert {r.name for r in report.failures} == expected, report.failure_message()
    for r in report.failures:
        if r.name in FLOAT32:  # failed at the fixed points: the worst one, per function
            assert r.detail.startswith(("in float32, not within 1e-05", "in bfloat16, not finite"))
            assert "FAIL " in r.detail and " at log_r = " in r.detail
        elif r.name not in {"normalized", "definition_accuracy"}:  # these draw nothing
            assert f"Failing test case: {r.name}(" in r.detail
    for name, text in texts.items():
        assert text in result(report, name).detail, result(report, name).detail


def test_every_property_fails_in_some_case() -> None:
    assert set().union(*(expected for _, expected, _ in BROKEN.values())) == set(PROPERTIES)


def test_counterexample_is_shrunk() -> None:
    report = check_divergence(_f_star_too_small_far_left(), raise_on_failure=False)
    detail = result(report, "fenchel_young_inequality").detail
    # hypothesis shrinks to the simplest u and t in the broken region
    assert "u=1.0," in detail and "t=-2.0," in detail


def test_failure_raises_with_report_and_counterexample() -> None:
    with pytest.raises(AssertionError) as info:
        check_divergence(_vlc_paper_negative_term(), max_examples=EXAMPLES)
    message = str(info.value)
    assert message.startswith("check_divergence('vlc'): 11/15 passed")
    assert "FAIL  negative_term_composition" in message
    assert "PASS  fenchel_young_equality" in message
    assert "negative_term_composition failed:" in message
    assert "Failing test case: negative_term_composition(\n" in message
    assert "log_r=0.0," in message


def test_error_raised_by_the_divergence_is_reported_with_its_location() -> None:
    def f_star(t: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("f_star is not implemented")

    d = fm.get_divergence("kl")
    d.f_star = f_star
    report = check_divergence(d, max_examples=EXAMPLES, raise_on_failure=False)
    assert {r.name for r in report.failures} == {
        "fenchel_young_inequality",
        "fenchel_young_equality",
        "negative_is_conjugate",
    }
    detail = result(report, "fenchel_young_equality").detail
    assert detail.startswith("RuntimeError: f_star is not implemented\n(raised in f_star at ")
    assert __file__ in detail


def test_positive_term_outside_the_domain_is_reported() -> None:
    d = fm.get_divergence("neyman")  # domain (-oo, 1)
    pt = d.positive_term
    d.positive_term = lambda s: torch.where(s > 5, pt(s) + 0.5, pt(s))
    report = check_divergence(d, max_examples=EXAMPLES, raise_on_failure=False)
    assert {r.name for r in report.failures} == {
        "negative_is_conjugate",
        "positive_term_composition",
        "float32_values",
    }
    detail = result(report, "negative_is_conjugate").detail
    assert "is outside the conjugate domain Interval.open(-oo, 1)" in detail


def test_nan_fails() -> None:
    d = fm.get_divergence("pearson")
    d.f_star = lambda t: torch.full_like(t, math.nan)
    report = check_divergence(d, max_examples=EXAMPLES, raise_on_failure=False)
    assert "fenchel_young_inequality" in {r.name for r in report.failures}
    assert (
        "f_star(0.0) = nan, but t is inside its domain"
        in result(report, "fenchel_young_inequality").detail
    )


# ---------------------------------------------------------------------------- strategies
@settings(max_examples=50, deadline=None, database=None, derandomize=True)
@given(u=strategies.ratios(), log_r=strategies.log_ratios(-5, 5))
def test_ratios_and_log_ratios_stay_in_range(u: float, log_r: float) -> None:
    assert 1e-4 <= u <= 1e4
    assert -5 <= log_r <= 5


def test_conjugate_arguments_stay_strictly_inside(catalog_name: str) -> None:
    d = fm.get_divergence(catalog_name)
    domain = d.conjugate_domain

    @settings(max_examples=50, deadline=None, database=None, derandomize=True)
    @given(t=strategies.conjugate_arguments(d))
    def inside(t: float) -> None:
        assert float(domain.inf) < t < float(domain.sup)
        assert -50 <= t <= 50
        assert math.isfinite(float(d.f_star(torch.tensor(t, dtype=torch.float64))))

    inside()


def test_conjugate_arguments_refuse_a_domain_without_interior() -> None:
    flat = Patched(fm.get_divergence("kl"), conjugate_domain=sp.Interval(1, 1), name="flat")
    with pytest.raises(ValueError, match="'flat' is"):
        strategies.conjugate_arguments(flat)


def test_ratios_refuse_bad_bounds() -> None:
    with pytest.raises(ValueError, match="0 < low < high"):
        strategies.ratios(0.0, 1.0)


def test_divergences_draws_registered_divergences() -> None:
    names = set(fm.list_divergences())

    @settings(max_examples=10, deadline=None, database=None, derandomize=True)
    @given(d=strategies.divergences())
    def registered(d: fm.Divergence) -> None:
        assert d.name in names

    registered()


# ---------------------------------------------------------------------------- pytest plugin
def test_fixture_checks_a_name(fmicl_check: Callable[..., CheckReport]) -> None:
    assert fmicl_check("pearson", max_examples=5).passed


def test_fixture_in_a_plugin_authors_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import torch
        import fmicl_registry as fm

        def test_good(fmicl_check):
            fmicl_check("sh", max_examples=5)

        def test_bad(fmicl_check):
            d = fm.get_divergence("kl")
            d.f_second = lambda u: 2 * d.f_prime(u)
            fmicl_check(d, max_examples=5)
        """
    )
    run = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    run.assert_outcomes(passed=1, failed=1)
    run.stdout.fnmatch_lines(
        [
            "*check_divergence('kl'): 14/15 passed*",
            "*FAIL  autodiff_derivatives*",
            "*Failing test case: autodiff_derivatives(*",
        ]
    )


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, fmicl_registry.testing.pytest_plugin; "
        "print(sorted(m for m in ('torch', 'sympy', 'hypothesis', "
        "'fmicl_registry.testing.checks') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
