"""``check_divergence``: the properties every f-divergence must have, tested with hypothesis.

Each property is stated in Lu et al. 2023: ``f`` is convex on ``u > 0`` with
``f(1) = 0``; ``f'`` is its derivative; ``f*`` is its convex conjugate (Fenchel-Young); and the
composed terms are ``f'(exp(log_r))`` and ``f*(f'(exp(log_r))) = u f'(u) - f(u)``.

The first ten properties compare the compiled functions with one another, in float64 on scalar
tensors. Tolerances are relative to the size of the numbers involved (``REL``), with an
absolute floor (``ABS``) for values that are zero up to rounding. Where the reference
computation is ill-conditioned, the tolerance adds the error that float64 rounding of its
*input* unavoidably causes (``COND`` times the sensitivity); each check says which. The
constants are loose enough that the catalog passes with margin, and tight enough that a wrong
formula (a sign, a factor, a branch) fails by orders of magnitude.

The float32 properties (``float32_values``, ``float32_gradients``, ``float32_slopes``,
``bfloat16_finite``) hold the composed terms to what training meets: float32 inputs, autograd
gradients, and an independent reference evaluated from the generator alone with mpmath at 50
digits and more (:mod:`fmicl_registry.testing.reference`), at fixed points chosen to break them
(:func:`stress_log_ratios`) and then at hypothesis-drawn float32 points. The criterion is the
library's own: relative error at most ``ACCURACY_TARGET`` (1e-5) wherever the exact value is
finite and within float32's range; a failure names, for each function, the worst point with
the value it got and the exact one. ``definition_accuracy`` fails when the definition's own
measurement missed that target (when ``define_divergence`` warned with ``AccuracyWarning``).
"""

from __future__ import annotations

import contextvars
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
import torch
from hypothesis import HealthCheck, Phase, given, settings

from .. import get_divergence
from ..divergence import ACCURACY_TARGET, Divergence
from . import strategies as fst
from .reference import GeneratorReference

__all__ = ["PROPERTIES", "CheckReport", "PropertyResult", "check_divergence", "stress_log_ratios"]

Tensor = torch.Tensor
Fn = Callable[[Tensor], Tensor]

#: float64 unit roundoff (2.2e-16).
EPS = float(torch.finfo(torch.float64).eps)
#: Relative tolerance, about 4.5 million ulps: far above the few-ulp rounding of a sound
#: formula (and of cancellation between terms up to ~1000x the result), far below the O(1)
#: relative error of a wrong one.
REL = 1e-9
#: Absolute floor for results that should be 0 up to rounding of O(1) terms (f' near its zero,
#: f'' of a nearly linear f, the slack of Fenchel-Young at equality).
ABS = 1e-12
#: Ulps allowed for the rounding of an input that a reference computation amplifies.
COND = 64 * EPS
#: ``log_r`` range of the composed-term checks: the range the stable forms are built for, and
#: what f-MICL meets (the paper's text setting, gamma = 20, reaches log_r = -80).
LOG_R = 80.0
#: Reference values beyond float32's range are out of scope: f-MICL trains in float32 (or
#: autocast), where they are inf anyway, and float64 formulas that square them overflow (cosh's
#: conjugate at t = 3e174). An example whose *reference* side (f(u), u f'(u), a naive
#: composition) is beyond this, or inf, is skipped; the side under test must still be right.
HUGE = float(torch.finfo(torch.float32).max)


# ------------------------------------------------------------------------------- helpers
def _tensor(x: float) -> Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _at(fn: Fn, x: float) -> float:
    """``fn`` at the float64 scalar ``x``, as a Python float."""
    return float(fn(_tensor(x)))


def _grad(fn: Fn, x: float) -> float:
    """``fn'(x)`` by ``torch.func.grad``."""
    return float(torch.func.grad(fn)(_tensor(x)))


def _grad2(fn: Fn, x: float) -> float:
    """``fn''(x)`` by ``torch.func.grad`` of ``torch.func.grad``."""
    return float(torch.func.grad(torch.func.grad(fn))(_tensor(x)))


def _require(ok: bool, message: str) -> None:
    # Written as "require the good case" so that NaN (every comparison False) fails too.
    if not ok:
        raise AssertionError(message)


def _beyond(*references: float) -> bool:
    """Whether a reference value overflows float32 (NaN is never "beyond": it fails)."""
    return any(abs(x) > HUGE for x in references)


def _inside(t: float, domain: sp.Interval) -> bool:
    """``t`` strictly inside ``domain`` in float64."""
    return float(domain.inf) < t < float(domain.sup)


def _on_edge(t: float, domain: sp.Interval) -> bool:
    """``t`` within 4 ulps of a finite end of ``domain``, where ``f*`` may be infinite.

    ``f'(u)`` rounds onto the end of a bounded domain at extreme ``u`` (Neyman: ``1 - u^-2`` is
    ``1.0`` for ``u > 1e8``): there is nothing to compare there. Further out is a bug.
    """
    ends = (float(e) for e in (domain.inf, domain.sup) if e.is_finite)
    return any(abs(t - e) <= 4 * EPS * max(1.0, abs(e)) for e in ends)


# ------------------------------------------------------------------------------- properties
# Each property takes the divergence and the hypothesis settings, and raises on failure. The
# inner test function carries the property's name, so hypothesis's note reads
# "Failing test case: fenchel_young_inequality(u=..., t=...)".


def _normalized(d: Divergence, cfg: settings) -> None:
    expr = d.generator
    value = sp.simplify(expr.subs({s: 1 for s in expr.free_symbols if s.name == "u"}))
    zero = value.is_zero
    if zero is None and not value.free_symbols:  # sympy could not decide: 60 digits
        zero = abs(complex(sp.N(value, 60))) < 1e-50
    _require(
        bool(zero),
        f"the generator f(u) = {expr} has f(1) = {value}, not 0 (normalize=True subtracts it)",
    )
    # The compiled f must agree: 0 up to rounding of terms of the size of f near 1.
    f1 = _at(d.f, 1.0)
    tol = ABS * max(1.0, abs(_at(d.f, 2.0)), abs(_at(d.f, 0.5)))
    _require(abs(f1) <= tol, f"the compiled f(1.0) = {f1!r}, not 0 (tolerance {tol:.2g})")


def _convex_midpoint(d: Divergence, cfg: settings) -> None:
    @cfg
    @given(a=fst.ratios(), b=fst.ratios())
    def convex_midpoint(a: float, b: float) -> None:
        m = (a + b) / 2
        fa, fb, fm = _at(d.f, a), _at(d.f, b), _at(d.f, m)
        chord = (fa + fb) / 2
        tol = REL * (abs(fa) + abs(fb) + abs(fm)) + ABS
        _require(
            fm <= chord + tol,
            f"f is not convex between a = {a!r} and b = {b!r}: f((a+b)/2) = {fm!r} exceeds "
            f"(f(a) + f(b))/2 = {chord!r} by {fm - chord:.3g} (tolerance {tol:.2g})",
        )

    convex_midpoint()


def _convex_second_derivative(d: Divergence, cfg: settings) -> None:
    @cfg
    @given(u=fst.ratios())
    def convex_second_derivative(u: float) -> None:
        fu = _at(d.f, u)
        if _beyond(fu):
            return
        second = _grad2(d.f, u)
        # Rounding in an autodiff f'' is ~eps times the terms that cancel in it, which have the
        # size of |f'|/u and |f|/u^2.
        tol = REL * (abs(_grad(d.f, u)) / u + abs(fu) / u**2) + ABS
        _require(
            second >= -tol,
            f"f''(u) = {second!r} < 0 at u = {u!r}: f is not convex there "
            f"(f'' by torch.func.grad(torch.func.grad(d.f)); tolerance {tol:.2g})",
        )

    convex_second_derivative()


def _monotone_derivative(d: Divergence, cfg: settings) -> None:
    @cfg
    @given(a=fst.ratios(), b=fst.ratios())
    def monotone_derivative(a: float, b: float) -> None:
        lo, hi = min(a, b), max(a, b)
        g_lo, g_hi = _at(d.f_prime, lo), _at(d.f_prime, hi)
        tol = REL * (abs(g_lo) + abs(g_hi)) + ABS
        _require(
            g_lo <= g_hi + tol,
            f"f' decreases: f_prime({lo!r}) = {g_lo!r} > f_prime({hi!r}) = {g_hi!r} "
            f"(tolerance {tol:.2g})",
        )

    monotone_derivative()


def _autodiff_derivatives(d: Divergence, cfg: settings) -> None:
    @cfg
    @given(u=fst.ratios())
    def autodiff_derivatives(u: float) -> None:
        fu, fp, fs = _at(d.f, u), _at(d.f_prime, u), _at(d.f_second, u)
        if _beyond(fu):
            return
        auto1, auto2 = _grad(d.f, u), _grad(d.f_prime, u)
        # Both sides round their terms, of the size of the result and of |f|/u (|f'|/u for f'').
        tol1 = REL * (abs(auto1) + abs(fp) + abs(fu) / u) + ABS
        _require(
            abs(auto1 - fp) <= tol1,
            f"f_prime({u!r}) = {fp!r} but torch.func.grad(f)({u!r}) = {auto1!r} "
            f"(difference {auto1 - fp:.3g}, tolerance {tol1:.2g})",
        )
        tol2 = REL * (abs(auto2) + abs(fs) + abs(fp) / u) + ABS
        _require(
            abs(auto2 - fs) <= tol2,
            f"f_second({u!r}) = {fs!r} but torch.func.grad(f_prime)({u!r}) = {auto2!r} "
            f"(difference {auto2 - fs:.3g}, tolerance {tol2:.2g})",
        )

    autodiff_derivatives()


def _fenchel_young_inequality(d: Divergence, cfg: settings) -> None:
    domain = d.conjugate_domain

    @cfg
    @given(u=fst.ratios(), t=fst.conjugate_arguments(d))
    def fenchel_young_inequality(u: float, t: float) -> None:
        fu, fs = _at(d.f, u), _at(d.f_star, t)
        if _beyond(fu):
            return
        # f*(t) may be +inf in float64 (1e-6 u log u: f*(1) = 1e-6 e^999999), never NaN or -inf.
        _require(fs > -math.inf, f"f_star({t!r}) = {fs!r}, but t is inside its domain {domain}")
        slack = fu + fs - u * t
        tol = REL * (abs(fu) + abs(fs) + abs(u * t)) + ABS
        _require(
            slack >= -tol,
            f"f(u) + f*(t) < u t at u = {u!r}, t = {t!r}: f(u) = {fu!r}, f_star(t) = {fs!r}, "
            f"u t = {u * t!r}, short by {-slack:.3g} (tolerance {tol:.2g}); f_star is too small",
        )

    fenchel_young_inequality()


def _fenchel_young_equality(d: Divergence, cfg: settings) -> None:
    domain = d.conjugate_domain

    @cfg
    @given(u=fst.ratios())
    def fenchel_young_equality(u: float) -> None:
        fu, t = _at(d.f, u), _at(d.f_prime, u)
        if _beyond(fu, u * t) or _on_edge(t, domain):
            return
        fs = _at(d.f_star, t)
        gap = fu + fs - u * t
        # f* has slope u, so the rounding of t = f'(u) moves f*(t) by ~u eps |t|: inside REL |u t|.
        tol = REL * (abs(fu) + abs(fs) + abs(u * t)) + ABS
        _require(
            abs(gap) <= tol,
            f"f(u) + f*(f'(u)) != u f'(u) at u = {u!r}: f(u) = {fu!r}, t = f_prime(u) = {t!r}, "
            f"f_star(t) = {fs!r}, u t = {u * t!r}, off by {gap:.3g} (tolerance {tol:.2g})",
        )

    fenchel_young_equality()


def _negative_is_conjugate(d: Divergence, cfg: settings) -> None:
    domain = d.conjugate_domain

    @cfg
    @given(log_r=fst.log_ratios(-LOG_R, LOG_R))
    def negative_is_conjugate(log_r: float) -> None:
        t, neg = _at(d.positive_term, log_r), _at(d.negative_term, log_r)
        if _beyond(t, neg) or _on_edge(t, domain):
            return
        _require(
            _inside(t, domain),
            f"positive_term({log_r!r}) = {t!r} is outside the conjugate domain {domain}",
        )
        fs = _at(d.f_star, t)
        u = math.exp(log_r)
        f2 = abs(_at(d.f_second, u))
        # f* has slope u at t, and t carries a few ulps of rounding, relative to |t| and to
        # d t / d log_r = u f''(u): that moves f*(t) by ~u eps (|t| + u f''). Near the end of
        # a bounded domain (JS, SH, VLC, Neyman at large log_r) this dominates.
        tol = REL * (abs(neg) + abs(fs)) + COND * u * (abs(t) + u * f2) + ABS
        _require(
            abs(neg - fs) <= tol,
            f"negative_term({log_r!r}) = {neg!r} but f_star(positive_term({log_r!r})) = "
            f"f_star({t!r}) = {fs!r} (difference {neg - fs:.3g}, tolerance {tol:.2g})",
        )

    negative_is_conjugate()


def _positive_term_composition(d: Divergence, cfg: settings) -> None:
    @cfg
    @given(log_r=fst.log_ratios(-LOG_R, LOG_R))
    def positive_term_composition(log_r: float) -> None:
        u = math.exp(log_r)
        naive = _at(d.f_prime, u)
        if _beyond(naive):
            return
        got = _at(d.positive_term, log_r)
        # exp rounds u by half an ulp, which moves f'(u) by u f''(u) eps/2; REL covers the
        # rounding of both forms.
        tol = REL * (abs(got) + abs(naive) + u * abs(_at(d.f_second, u))) + ABS
        _require(
            abs(got - naive) <= tol,
            f"positive_term({log_r!r}) = {got!r} but f_prime(exp({log_r!r})) = {naive!r} "
            f"(difference {got - naive:.3g}, tolerance {tol:.2g})",
        )

    positive_term_composition()


def _negative_term_composition(d: Divergence, cfg: settings) -> None:
    @cfg
    @given(log_r=fst.log_ratios(-LOG_R, LOG_R))
    def negative_term_composition(log_r: float) -> None:
        u = math.exp(log_r)
        fu, fp = _at(d.f, u), _at(d.f_prime, u)
        naive = u * fp - fu
        if _beyond(naive, u * fp, fu):
            return
        got = _at(d.negative_term, log_r)
        # The naive form cancels u f'(u) against f(u) (KL at log_r = 30: 31 u - 30 u), so its
        # error is eps (|u f'| + |f|); rounding u moves it by (d/du)(u f' - f) u eps = u^2 f'' eps.
        scale = abs(got) + abs(naive) + abs(u * fp) + abs(fu) + u * u * abs(_at(d.f_second, u))
        tol = REL * scale + ABS
        _require(
            abs(got - naive) <= tol,
            f"negative_term({log_r!r}) = {got!r} but u f'(u) - f(u) at u = exp({log_r!r}) is "
            f"{naive!r} (difference {got - naive:.3g}, tolerance {tol:.2g})",
        )

    negative_term_composition()


# ------------------------------------------------------------------------------- float32 terms
# The properties above compare the compiled functions with each other, in float64. These hold
# the composed terms to what training meets: float32 (and bfloat16) inputs, autograd gradients,
# and an independent 50+ digit reference computed from the generator alone
# (``reference.GeneratorReference``), at points chosen to break them and at hypothesis draws.

#: Relative error allowed in float32, value and gradient: the library's own target.
FLOAT32_TOLERANCE = ACCURACY_TARGET
#: Relative errors are relative to ``max(|exact|, TINY)``.
TINY = 1e-30
#: Exact values beyond float32's largest (3.4e38) are not checked: float32 cannot hold them.
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
#: bfloat16 is held to finiteness only, where the exact value is within half its largest value
#: (bfloat16 has float32's range with 8 bits of mantissa; closer to the top, rounding may
#: legitimately reach inf).
BFLOAT16_FITS = 0.5 * float(torch.finfo(torch.bfloat16).max)

_REFERENCES: contextvars.ContextVar[dict[sp.Expr, GeneratorReference] | None] = (
    contextvars.ContextVar("fmicl_check_references", default=None)
)


def _reference(d: Divergence) -> GeneratorReference:
    """The generator's reference, shared by the properties of one ``check_divergence`` call."""
    cache = _REFERENCES.get()
    if cache is None:
        return GeneratorReference(d.generator)
    found = cache.get(d.generator)
    if found is None:
        found = cache[d.generator] = GeneratorReference(d.generator)
    return found


def _piece_boundaries(d: Divergence) -> list[float]:
    pieces = getattr(d, "pieces", None) or {}
    ends = {float(end) for rows in pieces.values() for row in rows for end in row[:2]}
    return sorted(e for e in ends if math.isfinite(e))


def stress_log_ratios(d: Divergence, low: float = -80.0, high: float = 80.0) -> np.ndarray:
    """The fixed float32 points of ``log_r`` where the float32 properties test ``d``'s terms.

    Chosen to break them: ``log_r = 0`` (``u = 1``, where ``f'`` and ``u f'(u) - f(u)``
    usually cancel) and ``+-1e-30, 1e-20, 1e-10`` and every half decade from ``1e-8`` to 1;
    every finite boundary of ``d.pieces`` (where a stable form hands over to another) and 1, 2
    and 3 float32 ulps, ``1e-3`` and ``1e-2`` either side; the tails (``+-20, 40, 60, 80`` and
    every ``0.5`` from 10.25 to 79.75, where intermediates overflow); and a grid over the range
    with step 1. Sorted, unique, clipped to ``[low, high]``; a few hundred points.

    Example:
        >>> import fmicl_registry as fm
        >>> points = stress_log_ratios(fm.get_divergence("js"))
        >>> str(points.dtype), float(points.min()), float(points.max()), 0.0 in points
        ('float32', -80.0, 80.0, True)
        >>> 300 < len(points) < 1000
        True
    """
    small = np.logspace(-8, 0, 17)
    tails = np.arange(10.25, 80.0, 0.5)
    fixed = np.concatenate(
        [
            [0.0, 1e-30, 1e-20, 1e-10, -1e-30, -1e-20, -1e-10],
            small,
            -small,
            [20.0, 40.0, 60.0, 80.0, -20.0, -40.0, -60.0, -80.0],
            tails,
            -tails,
            np.linspace(-80.0, 80.0, 161),
        ]
    ).astype(np.float32)
    near: list[np.ndarray] = [fixed]
    for boundary in _piece_boundaries(d):
        b = np.float32(boundary)
        up, down = [b], [b]
        for _ in range(3):
            up.append(np.nextafter(up[-1], np.float32(np.inf)))
            down.append(np.nextafter(down[-1], np.float32(-np.inf)))
        offsets = np.array([boundary - 1e-2, boundary - 1e-3, boundary + 1e-3, boundary + 1e-2])
        near.append(np.array(up + down, dtype=np.float32))
        near.append(offsets.astype(np.float32))
    points = np.unique(np.concatenate(near))
    return points[(points >= low) & (points <= high)]


@dataclass(frozen=True)
class _Checked:
    """One function the float32 properties test: a term's value, or its autograd gradient."""

    term: str  # the attribute of the divergence: positive_term, negative_term, ...
    gradient: bool  # the autograd gradient d term / d log_r instead of the value
    reference: int  # the row of GeneratorReference.at: f', u f'', u f' - f, u^2 f''
    want: str  # the reference in words

    @property
    def label(self) -> str:
        return f"d {self.term} / d log_r (autograd)" if self.gradient else self.term


_VALUES = (
    _Checked("positive_term", False, 0, "f'(u)"),
    _Checked("negative_term", False, 2, "u f'(u) - f(u)"),
)
_GRADIENTS = (
    _Checked("positive_term", True, 1, "u f''(u)"),
    _Checked("negative_term", True, 3, "u^2 f''(u)"),
)
_SLOPES = (
    _Checked("positive_slope", False, 1, "u f''(u)"),
    _Checked("negative_slope", False, 3, "u^2 f''(u)"),
)


def _f32(x: float) -> str:
    """``x`` as the shortest text that reads back as the same float32."""
    return str(np.float32(x))


@dataclass
class _Worst:
    """The worst point so far of one checked function, and how many points failed."""

    checked: _Checked
    finite_only: bool
    error: float = 0.0
    log_r: float = math.nan
    got: float = math.nan
    want: float = math.nan
    failing: int = 0
    points: int = 0

    def add(self, log_r: np.ndarray, got: np.ndarray, want: np.ndarray, tolerance: float) -> bool:
        """Take in a batch of points; whether any of them fails."""
        limit = BFLOAT16_FITS if self.finite_only else FLOAT32_MAX
        checkable = np.isfinite(want) & (np.abs(want) <= limit)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            if self.finite_only:
                error = np.where(np.isfinite(got), 0.0, np.inf)
            else:
                error = np.abs(got - want) / np.maximum(np.abs(want), TINY)
                error = np.where(np.isfinite(got), error, np.inf)  # NaN never passes
        error = np.where(checkable, error, 0.0)
        self.points += int(checkable.sum())
        bad = error > tolerance
        self.failing += int(bad.sum())
        if error.size and error.max() > self.error:
            i = int(error.argmax())
            self.error, self.log_r = float(error[i]), float(log_r[i])
            self.got, self.want = float(got[i]), float(want[i])
        return bool(bad.any())

    def line(self, tolerance: float) -> str:
        mark = "FAIL" if self.failing else "ok  "
        head = f"{mark} {self.checked.label} vs {self.checked.want}:"
        if not self.points:
            return f"{head} no point where the exact value is finite and fits"
        if math.isnan(self.log_r):  # never an error above 0
            return f"{head} {'finite' if self.finite_only else 'exact'} at all {self.points} points"
        where = f"at log_r = {_f32(self.log_r)}: got {self.got:.9g}, want {self.want:.10g}"
        if self.finite_only:
            return f"{head} not finite {where} ({self.failing} of {self.points} points)"
        count = f"{self.failing} of {self.points} points over {tolerance:g}"
        return f"{head} worst relative error {self.error:.2g} {where} ({count})"


def _evaluate(fn: Fn, name: str, log_r: np.ndarray, dtype: torch.dtype, gradient: bool) -> Any:
    """``fn`` (or its autograd gradient) at the points, computed in ``dtype``, as float64."""
    x = torch.tensor(log_r, dtype=torch.float32).to(dtype).requires_grad_(gradient)
    y = fn(x)
    _require(
        isinstance(y, Tensor) and y.shape == x.shape and y.dtype == dtype,
        f"{name} of a {dtype} tensor of shape {tuple(x.shape)} returned "
        + (f"a {y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, Tensor) else repr(y)),
    )
    if gradient:
        _require(y.requires_grad, f"{name}(log_r) has no autograd gradient (it is constant)")
        (y,) = torch.autograd.grad(y.sum(), x)
    return y.detach().double().numpy()


def _against_reference(
    d: Divergence,
    cfg: settings,
    name: str,
    rows: tuple[_Checked, ...],
    *,
    dtype: torch.dtype = torch.float32,
    finite_only: bool = False,
) -> None:
    """Test ``rows`` at :func:`stress_log_ratios`, then at hypothesis-drawn float32 points;
    on failure, raise with each row's worst point."""
    ref = _reference(d)
    tolerance = 0.0 if finite_only else FLOAT32_TOLERANCE
    worst = [_Worst(row, finite_only) for row in rows]

    def measure(log_r: np.ndarray) -> bool:
        want = ref.many(log_r)
        failed = False
        for row, tracker in zip(rows, worst, strict=True):
            got = _evaluate(getattr(d, row.term), row.term, log_r, dtype, row.gradient)
            failed |= tracker.add(log_r, got, want[row.reference], tolerance)
        return failed

    notes: list[str] = []
    if not measure(stress_log_ratios(d)):  # the fixed points pass: try hypothesis's

        def drawn(log_r: float) -> None:
            _require(not measure(np.array([log_r], dtype=np.float32)), "a drawn point failed")

        drawn.__name__ = drawn.__qualname__ = name  # "Failing test case: float32_values(...)"
        try:
            cfg(given(log_r=fst.float32_log_ratios(-LOG_R, LOG_R))(drawn))()
        except AssertionError as error:
            notes = list(getattr(error, "__notes__", []))
    if any(w.failing for w in worst):
        what = (
            "not finite where the exact value (the generator in mpmath) fits"
            if finite_only
            else f"not within {tolerance:g} relative error of the generator evaluated in mpmath"
        )
        lines = [
            f"in {str(dtype).removeprefix('torch.')}, {what}; points: stress_log_ratios(d), "
            "then hypothesis's:",
            *(f"  {w.line(tolerance)}" for w in worst),
            *notes,
        ]
        raise AssertionError("\n".join(lines))


def _float32_values(d: Divergence, cfg: settings) -> None:
    _against_reference(d, cfg, "float32_values", _VALUES)


def _float32_gradients(d: Divergence, cfg: settings) -> None:
    _against_reference(d, cfg, "float32_gradients", _GRADIENTS)


def _float32_slopes(d: Divergence, cfg: settings) -> None:
    _against_reference(d, cfg, "float32_slopes", _SLOPES)


def _bfloat16_finite(d: Divergence, cfg: settings) -> None:
    _against_reference(
        d, cfg, "bfloat16_finite", _VALUES + _GRADIENTS, dtype=torch.bfloat16, finite_only=True
    )


def _definition_accuracy(d: Divergence, cfg: settings) -> None:
    measured = {**getattr(d, "accuracy", {}), **getattr(d, "slope_accuracy", {})}
    missed = {k: v for k, v in measured.items() if not v <= ACCURACY_TARGET}
    _require(
        not missed,
        "the definition's own measurement (which warned with AccuracyWarning) found float32 "
        f"relative errors above its target {ACCURACY_TARGET:g} on log_r in [-80, 80]: "
        + ", ".join(f"{k} {v:.2g}" for k, v in missed.items())
        + " (Divergence.accuracy, Divergence.slope_accuracy; Divergence.pieces says which forms)",
    )


_CHECKS: list[tuple[str, str, Callable[[Divergence, settings], None]]] = [
    ("normalized", "f(1) = 0 (sympy generator and compiled f)", _normalized),
    ("convex_midpoint", "f((a+b)/2) <= (f(a) + f(b))/2", _convex_midpoint),
    ("convex_second_derivative", "f''(u) >= 0 (torch.func on f)", _convex_second_derivative),
    ("monotone_derivative", "f' is non-decreasing", _monotone_derivative),
    ("autodiff_derivatives", "grad f == f_prime, grad f_prime == f_second", _autodiff_derivatives),
    ("fenchel_young_inequality", "f(u) + f*(t) >= u t on the domain", _fenchel_young_inequality),
    ("fenchel_young_equality", "f(u) + f*(f'(u)) == u f'(u)", _fenchel_young_equality),
    ("negative_is_conjugate", "negative_term == f_star(positive_term)", _negative_is_conjugate),
    (
        "positive_term_composition",
        "positive_term(log_r) == f'(exp(log_r))",
        _positive_term_composition,
    ),
    (
        "negative_term_composition",
        "negative_term(log_r) == u f'(u) - f(u), u = exp(log_r)",
        _negative_term_composition,
    ),
    (
        "float32_values",
        "float32 terms within 1e-05 of the generator in mpmath (f', u f' - f)",
        _float32_values,
    ),
    (
        "float32_gradients",
        "float32 autograd gradients of the terms within 1e-05 (u f'', u^2 f'')",
        _float32_gradients,
    ),
    (
        "float32_slopes",
        "positive_slope, negative_slope in float32 within 1e-05 (u f'', u^2 f'')",
        _float32_slopes,
    ),
    (
        "bfloat16_finite",
        "terms and autograd gradients finite in bfloat16 where the exact ones fit",
        _bfloat16_finite,
    ),
    (
        "definition_accuracy",
        "the definition met its float32 accuracy target (no AccuracyWarning)",
        _definition_accuracy,
    ),
]

#: Property name -> what it states, in the order ``check_divergence`` runs them.
PROPERTIES: dict[str, str] = {name: statement for name, statement, _ in _CHECKS}


# ------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class PropertyResult:
    """One property's outcome; ``detail`` holds the error and the shrunk counterexample."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class CheckReport:
    """Every property's outcome for one divergence; ``str()`` gives one line per property."""

    divergence_name: str
    results: list[PropertyResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every property held."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[PropertyResult]:
        """The properties that failed."""
        return [r for r in self.results if not r.passed]

    def __str__(self) -> str:
        good = sum(r.passed for r in self.results)
        lines = [f"check_divergence({self.divergence_name!r}): {good}/{len(self.results)} passed"]
        width = max((len(r.name) for r in self.results), default=0)
        for r in self.results:
            mark = "PASS" if r.passed else "FAIL"
            lines.append(f"  {mark}  {r.name:<{width}}  {PROPERTIES.get(r.name, '')}".rstrip())
        return "\n".join(lines)

    def failure_message(self) -> str:
        """The report, then each failed property's error and counterexample."""
        parts = [str(self)]
        for r in self.failures:
            body = "\n".join(f"    {line}" for line in r.detail.splitlines())
            parts.append(f"{r.name} failed: {PROPERTIES.get(r.name, '')}\n{body}")
        return "\n\n".join(parts)


def _describe(error: BaseException) -> str:
    """The error's message and hypothesis's notes (the shrunk failing example)."""
    if isinstance(error, AssertionError):
        head = str(error)
    else:  # the divergence itself raised, or hypothesis gave up: say what, and where
        head = f"{type(error).__name__}: {error}"
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            where = frames[-1]
            head += f"\n(raised in {where.name} at {where.filename}:{where.lineno})"
    lines = [head, *getattr(error, "__notes__", [])]
    if isinstance(error, BaseExceptionGroup):
        lines += [_describe(sub) for sub in error.exceptions]
    return "\n".join(lines)


def check_divergence(
    d: Divergence | str, *, max_examples: int = 100, raise_on_failure: bool = True
) -> CheckReport:
    """Test every property in ``PROPERTIES`` on ``d`` with hypothesis: the float64 ones, then
    the composed terms and their gradients in float32 against the generator in mpmath.

    The runs are reproducible (``derandomize=True``, no example database), so a failure
    reappears on every run with the same shrunk counterexample.

    Args:
        d: a divergence, or the name of a registered one.
        max_examples: hypothesis examples per property.
        raise_on_failure: raise ``AssertionError`` (report plus counterexamples) if any
            property failed; otherwise return the report either way.

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.testing import check_divergence
        >>> report = check_divergence(fm.get_divergence("js"), max_examples=10)
        >>> report.passed
        True
        >>> print(str(report).splitlines()[0])
        check_divergence('js'): 15/15 passed
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this frame
    if isinstance(d, str):
        d = get_divergence(d)
    cfg = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        report_multiple_bugs=False,  # one shrunk example per property is enough
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow],
    )
    report = CheckReport(d.name)
    token = _REFERENCES.set({})  # the mpmath references, shared by this call's properties
    try:
        for name, _, check in _CHECKS:
            try:
                check(d, cfg)
            except Exception as error:  # any failure, including one raised by the divergence
                report.results.append(PropertyResult(name, False, _describe(error)))
            else:
                report.results.append(PropertyResult(name, True))
    finally:
        _REFERENCES.reset(token)
    if raise_on_failure and not report.passed:
        raise AssertionError(report.failure_message())
    return report
