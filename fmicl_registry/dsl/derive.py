"""Derivation and definition-time checks of a generator ``f(u)`` (PAPER.md section 1).

``derive`` takes the parsed generator (parameters already substituted), checks what makes it an
f-divergence generator, ``f(1) = 0`` (or subtracts it with ``normalize``), real and twice
differentiable on ``u > 0``, convex, not affine, and returns ``f'``, ``f''`` and the range of
``f'``, which is the domain of the conjugate.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from ..errors import DivergenceSpecError
from .budget import attempt
from .evaluate import mp_eval
from .parse import U

#: Functions whose presence in f' or f'' means f is not twice differentiable everywhere on u > 0.
_NONSMOOTH = (sp.Abs, sp.sign, sp.Heaviside, sp.DiracDelta, sp.Piecewise, sp.Max, sp.Min)
_SMOOTH_GRID = [mpmath.mpf(10) ** (k / 10) for k in range(-60, 61, 2)]
_CONVEX_GRID = [mpmath.mpf(10) ** (k / 50) for k in range(-400, 401)]


@dataclass
class Derivation:
    """What ``derive`` found; every field is exact (sympy) except ``convexity``."""

    generator: sp.Expr
    derivative: sp.Expr
    second_derivative: sp.Expr
    shift: sp.Expr  # the f(1) that normalize subtracted (0 when none)
    domain: sp.Interval
    convexity: str  # "proved" or a sentence on the numeric search


def simplified(expr: sp.Expr, seconds: float = 2.0) -> sp.Expr:
    """``sympy.simplify`` under a time budget; the input itself when it runs out."""
    result = attempt(lambda: sp.simplify(expr), seconds)
    return expr if result is None else result


def _mp(expr: sp.Expr, u: mpmath.mpf) -> mpmath.mpc | mpmath.mpf:
    with mpmath.workdps(30):
        try:
            return mp_eval(expr, {U: u})
        except (ZeroDivisionError, ValueError, OverflowError):
            return mpmath.nan


def _bad_value(value: object) -> str | None:
    if isinstance(value, mpmath.mpc):
        if abs(value.imag) > 1e-20 * max(1, abs(value.real)):
            return "not real"
        value = value.real
    if not mpmath.isfinite(value):
        return "not finite"
    return None


def _is_zero(value: sp.Expr) -> bool:
    if value == 0:
        return True
    with mpmath.workdps(50):
        number = mp_eval(value, {})
    return bool(abs(number) < mpmath.mpf(10) ** -40)


def derive(generator: sp.Expr, *, normalize: bool = False, text: str | None = None) -> Derivation:
    """Check and differentiate a generator; raise ``DivergenceSpecError`` with the reason."""
    where = text or str(generator)
    extra = generator.free_symbols - {U}
    if extra:
        names = ", ".join(sorted(str(s) for s in extra))
        raise DivergenceSpecError(f"parameters without a value: {names}", text=where)
    if U not in generator.free_symbols:
        raise DivergenceSpecError("the generator does not depend on u", text=where)

    at_one = generator.subs(U, 1)
    if at_one.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or _bad_value(_mp(generator, mpmath.mpf(1))):
        raise DivergenceSpecError("f(1) is not a finite real number", text=where)
    shift = sp.Integer(0)
    if not _is_zero(at_one):
        if not normalize:
            raise DivergenceSpecError(
                f"f(1) = {sp.nsimplify(at_one)}, but an f-divergence needs f(1) = 0; "
                "subtract it in the text or pass normalize=True",
                text=where,
            )
        shift = at_one
        generator = generator - at_one

    first = sp.diff(generator, U)
    second = sp.diff(first, U)
    for name, expr in (("f'", first), ("f''", second)):
        found = [fn.__name__ for fn in _NONSMOOTH if expr.has(fn)]
        if found:
            raise DivergenceSpecError(
                f"f is not twice differentiable on u > 0: {name} contains {found[0]}; "
                "write a smooth generator",
                text=where,
            )
    for u in _SMOOTH_GRID:
        for name, expr in (("f", generator), ("f'", first), ("f''", second)):
            problem = _bad_value(_mp(expr, u))
            if problem:
                raise DivergenceSpecError(
                    f"{name}(u) is {problem} at u = {mpmath.nstr(u, 4)}: the generator must be "
                    "real and twice differentiable for every u > 0",
                    text=where,
                )

    first = simplified(first)
    second = simplified(second)
    if second == 0 or _is_zero_function(second):
        raise DivergenceSpecError(
            "f is affine (f'' = 0): its divergence is zero for every pair of distributions",
            text=where,
        )
    convexity = _check_convex(second, where)
    domain = _range_of_derivative(first)
    return Derivation(generator, first, second, shift, domain, convexity)


def _is_zero_function(expr: sp.Expr) -> bool:
    return all(abs(_mp(expr, u)) < 1e-25 for u in _SMOOTH_GRID[::5])


def _check_convex(second: sp.Expr, where: str) -> str:
    for form in (second, attempt(lambda: sp.factor(second), 2.0)):
        if form is not None and form.is_nonnegative:
            return "proved"
    values = [(u, _mp(second, u)) for u in _CONVEX_GRID]
    reals = [(u, v.real if isinstance(v, mpmath.mpc) else v) for u, v in values]
    scale = max((abs(v) for _, v in reals if mpmath.isfinite(v)), default=1)
    worst_u, worst = min(reals, key=lambda p: p[1])
    if worst < -1e-12 * max(scale, 1):
        shown = mpmath.nstr(worst_u, 4)
        value = _mp(second, mpmath.mpf(shown))
        if (value.real if isinstance(value, mpmath.mpc) else value) >= 0:
            shown = mpmath.nstr(worst_u, 12)
        raise DivergenceSpecError(
            f"f is not convex on u > 0: f''(u) = {mpmath.nstr(worst, 4)} < 0 at u = {shown}",
            text=where,
        )
    return "checked numerically: f''(u) >= 0 at 801 points spread over [1e-8, 1e8]"


def _limit(first: sp.Expr, at: sp.Expr, direction: str) -> sp.Expr:
    found = attempt(lambda: sp.limit(first, U, at, direction), 3.0)
    if found is not None and not found.has(sp.AccumBounds, sp.Limit, sp.zoo, sp.nan):
        return found
    # Numeric fallback: follow f' towards the end and see whether it settles.
    sign = -1 if at == 0 else 1
    with mpmath.workdps(40):
        samples = [mp_eval(first, {U: mpmath.exp(sign * s)}) for s in (50, 100, 200)]
    samples = [s.real if isinstance(s, mpmath.mpc) else s for s in samples]
    if abs(samples[2] - samples[1]) > 10 * abs(samples[1] - samples[0]) or abs(samples[2]) > 1e30:
        return sp.oo if samples[2] > samples[1] else -sp.oo
    return sp.Float(str(samples[2]), 15)


def _range_of_derivative(first: sp.Expr) -> sp.Interval:
    low = _limit(first, sp.Integer(0), "+")
    high = _limit(first, sp.oo, "-")
    if not bool(low < high):
        raise DivergenceSpecError(
            f"f' does not increase over u > 0 (it goes from {low} at 0+ to {high} at infinity): "
            "f is not convex on the whole axis"
        )
    return sp.Interval(low, high, left_open=True, right_open=True)
