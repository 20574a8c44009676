"""Derivation and definition-time checks of a generator ``f(u)`` (f-MI, Lu et al. 2023).

``derive`` takes the parsed generator (parameters already substituted), checks what makes it an
f-divergence generator, ``f(1) = 0`` (or subtracts it with ``normalize``), real and twice
differentiable on ``u > 0``, convex, not affine, and returns ``f'``, ``f''`` and the range of
``f'``, which is the domain of the conjugate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mpmath
import sympy as sp

from ..errors import DivergenceSpecError
from .budget import attempt
from .evaluate import HUGE, mp_eval
from .parse import U

#: Functions a generator may not use: the stable forms need f, f' and f'' each as one smooth
#: expression on u > 0. (Some generators written with them are twice differentiable, e.g.
#: ``abs(u - 1)**3``; they are refused all the same, and the message says so.)
_NONSMOOTH = (sp.Abs, sp.sign, sp.Heaviside, sp.DiracDelta, sp.Piecewise, sp.Max, sp.Min)
_NONSMOOTH_NAMES = {sp.Abs: "abs", sp.sign: "sign", sp.Heaviside: "Heaviside"}
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


def _shown(exact: sp.Expr, value: mpmath.mpf) -> str:
    """A number for a message: exact when short, else 15 digits."""
    text = str(exact)
    return text if len(text) <= 40 else mpmath.nstr(value, 15)


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
    value_at_one = _mp(generator, mpmath.mpf(1))
    if at_one.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or _bad_value(value_at_one):
        raise DivergenceSpecError("f(1) is not a finite real number", text=where)
    if abs(value_at_one) >= mpmath.mpf(2) ** 4096 or abs(value_at_one) >= HUGE:
        raise DivergenceSpecError(
            "f(1) is beyond 2**4096: far too large to compute with; rescale the generator",
            text=where,
        )
    shift = sp.Integer(0)
    if not _is_zero(at_one):
        if not normalize:
            raise DivergenceSpecError(
                f"f(1) = {_shown(at_one, value_at_one)}, but an f-divergence needs f(1) = 0; "
                "subtract it in the text or pass normalize=True",
                text=where,
            )
        shift = at_one
        generator = generator - at_one

    used = [fn for fn in _NONSMOOTH if generator.has(fn)]
    first = sp.diff(generator, U)
    second = sp.diff(first, U)
    if used or any(expr.has(fn) for expr in (first, second) for fn in _NONSMOOTH):
        raise DivergenceSpecError(_nonsmooth_message(used, first, second), text=where)
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
    convexity = _check_convex(second, first, where)
    domain = _range_of_derivative(first)
    return Derivation(generator, first, second, shift, domain, convexity)


def _nonsmooth_message(used: list[type], first: sp.Expr, second: sp.Expr) -> str:
    if not used:
        found = next(fn for fn in _NONSMOOTH if first.has(fn) or second.has(fn))
        return (
            f"f is not twice differentiable on u > 0: its derivatives contain {found.__name__}; "
            "write a smooth generator"
        )
    names = ", ".join(_NONSMOOTH_NAMES.get(fn, fn.__name__) for fn in used)
    kinks = _kinks(first, second)
    if kinks:
        shown = ", ".join(mpmath.nstr(k, 6) for k in kinks)
        return (
            f"f is not twice differentiable on u > 0: f' or f'' jumps at u = {shown} "
            f"(the generator uses {names}); write a smooth generator"
        )
    return (
        f"the generator uses {names}, which generators may not use: the stable forms need f, "
        "f' and f'' each as one smooth expression on u > 0, so abs, sign, Heaviside, Piecewise, "
        "Max and Min are refused even where f is twice differentiable (as abs(u - 1)**3 is); "
        "write it without them"
    )


def _kinks(first: sp.Expr, second: sp.Expr) -> list[mpmath.mpf]:
    """Points ``u > 0`` where ``f'`` or ``f''`` (without its Dirac deltas) jumps, among the
    zeros of the arguments of the non-smooth functions in them."""
    spots: set[mpmath.mpf] = set()
    for node in sp.preorder_traversal(sp.Add(first, second)):
        if isinstance(node, _NONSMOOTH) and node.args and node.args[0].has(U):
            roots = attempt(functools.partial(sp.solve, node.args[0], U), 2.0) or []
            for root in roots:
                value = _mp(root, mpmath.mpf(1))
                if not _bad_value(value) and value > 0:
                    spots.add(value.real if isinstance(value, mpmath.mpc) else value)
    smooth_second = second.replace(sp.DiracDelta, lambda *args: sp.Integer(0))
    found = []
    for spot in sorted(spots):
        with mpmath.workdps(60):
            below, above = spot * (1 - mpmath.mpf(10) ** -25), spot * (1 + mpmath.mpf(10) ** -25)
        for expr in (first, smooth_second):
            left, right = _real_at(expr, below, 60), _real_at(expr, above, 60)
            if not (mpmath.isfinite(left) and mpmath.isfinite(right)) or abs(
                left - right
            ) > mpmath.mpf(10) ** -10 * max(1, abs(left)):
                found.append(spot)
                break
    return found


def _is_zero_function(expr: sp.Expr) -> bool:
    return all(abs(_mp(expr, u)) < 1e-25 for u in _SMOOTH_GRID[::5])


def _real_at(expr: sp.Expr, u: mpmath.mpf, digits: int) -> mpmath.mpf:
    with mpmath.workdps(digits):
        try:
            value = mp_eval(expr, {U: u})
        except (ZeroDivisionError, ValueError, OverflowError, NotImplementedError):
            return mpmath.nan
    return value.real if isinstance(value, mpmath.mpc) else value


def _confirmed(expr: sp.Expr, u: mpmath.mpf, sign: int = -1) -> mpmath.mpf | None:
    """``expr(u)`` if it has the given sign at 40 and at 80 digits, the two agreeing to 0.1%:
    a value whose sign is not rounding noise (a convex ``f''`` that touches 0, like the one
    of ``(u - 1)**4`` at ``u = 1``, is noise of either sign at 40 digits)."""
    low, high = _real_at(expr, u, 40), _real_at(expr, u, 80)
    if not (mpmath.isfinite(low) and mpmath.isfinite(high)):
        return None
    if sign * high > 0 and sign * low > 0 and abs(high - low) <= 1e-3 * abs(high):
        return high
    return None


def _check_convex(second: sp.Expr, first: sp.Expr, where: str) -> str:
    """Prove ``f'' >= 0`` or search for a point where it is negative.

    The search does not compare ``f''`` with a global scale (for log-type generators ``f''``
    is ~1e16 near ``u = 0``, which would hide any dip elsewhere): a negative value counts when
    it stays negative at twice the precision. ``f'`` must also not decrease between
    neighbouring grid points (a dip of ``f''`` between them shows up there).
    """
    for form in (second, attempt(lambda: sp.factor(second), 2.0)):
        if form is not None and form.is_nonnegative:
            return "proved"
    negative = []
    for u in _CONVEX_GRID:
        value = _real_at(second, u, 40)
        if mpmath.isfinite(value) and value < 0:
            confirmed = _confirmed(second, u)
            if confirmed is not None:
                negative.append((confirmed, u))
    if negative:
        worst, worst_u = min(negative, key=lambda p: p[0])
        shown = mpmath.nstr(worst_u, 4)
        if _confirmed(second, mpmath.mpf(shown)) is None:
            shown = mpmath.nstr(worst_u, 12)
        raise DivergenceSpecError(
            f"f is not convex on u > 0: f''(u) = {mpmath.nstr(worst, 4)} < 0 at u = {shown}",
            text=where,
        )
    previous: tuple[mpmath.mpf, mpmath.mpf] | None = None
    for u in _CONVEX_GRID:
        value = _real_at(first, u, 40)
        if not mpmath.isfinite(value):
            continue
        if previous is not None and value < previous[1]:
            step = _real_at(first, u, 80) - _real_at(first, previous[0], 80)
            if step < 0 and abs(step) > mpmath.mpf(10) ** -60 * max(1, abs(value)):
                a, b = mpmath.nstr(previous[0], 6), mpmath.nstr(u, 6)
                raise DivergenceSpecError(
                    f"f is not convex on u > 0: f' decreases between u = {a} and u = {b} "
                    f"(by {mpmath.nstr(-step, 3)}), so f'' < 0 somewhere in between",
                    text=where,
                )
        previous = (u, value)
    return "checked numerically: f''(u) >= 0 and f' increasing at 801 points over [1e-8, 1e8]"


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
    low = _tidy(_limit(first, sp.Integer(0), "+"))
    high = _tidy(_limit(first, sp.oo, "-"))
    if not bool(low < high):
        raise DivergenceSpecError(
            f"f' does not increase over u > 0 (it goes from {low} at 0+ to {high} at infinity): "
            "f is not convex on the whole axis"
        )
    # f' increases (checked before), so its values on the grid lie between its limits; a limit
    # that says otherwise is wrong, and so would be the conjugate's domain.
    ends = [_real_at(first, _CONVEX_GRID[0], 40), _real_at(first, _CONVEX_GRID[-1], 40)]
    with mpmath.workdps(40):
        bounds = [mp_eval(b, {}) if b.is_finite else None for b in (low, high)]
        slack = [None if b is None else mpmath.mpf(10) ** -30 * (1 + abs(b)) for b in bounds]
        wrong = (bounds[0] is not None and ends[0] < bounds[0] - slack[0]) or (
            bounds[1] is not None and ends[1] > bounds[1] + slack[1]
        )
    if wrong:
        raise DivergenceSpecError(
            f"could not find the range of f' (its limits {low} at 0+ and {high} at infinity "
            "disagree with its values in between); the conjugate's domain is unknown"
        )
    return sp.Interval(low, high, left_open=True, right_open=True)


def _tidy(value: sp.Expr) -> sp.Expr:
    """The shortest of a few exact ways to write a number (``log(10**(3/10)*3**(7/10)/3)``
    reads better as ``3*log(10/3)/10``)."""
    if not value.is_finite or value.is_Rational:
        return value
    options = [value]
    for rewrite in (
        lambda e: sp.expand_log(e, force=True),
        lambda e: sp.logcombine(sp.factor(sp.expand_log(e, force=True)), force=True),
        lambda e: sp.factor(sp.expand_log(e, force=True)),
        sp.nsimplify,
    ):
        found = attempt(functools.partial(rewrite, value), 1.0)
        if found is not None and found.is_finite and _is_zero(found - value):
            options.append(found)
    return min(options, key=lambda e: (len(str(e)), str(e)))
