"""Choose numerically stable forms of the composed terms (Lu et al. 2023).

The composed terms are functions of ``log_r`` (``u = exp(log_r)``)::

    positive_term(log_r) = f'(u)
    negative_term(log_r) = u f'(u) - f(u)        (= f*(f'(u)), Fenchel-Young equality)

Algebraically equal forms differ wildly in float32: ``log 2 - softplus(-x)`` cancels near
``x = 0`` where ``log1p(expm1(x) / (exp(x) + 1))`` is exact, and the latter fails at
``x = -80``. Rather than trusting one hand-picked form, this module works like a small Herbie:

1. it writes each term several ways (as derived, factored, logs expanded, ``log(A)`` as
   ``log1p(A - 1)``; each also in the mirrored variable ``v = 1/u``), then rewrites each with
   stable primitives (``exp(z) - 1 -> expm1(z)``, ``log(1 + exp(z)) -> softplus(z)``,
   ``log(1 + w) -> log1p(w)``);
2. it measures every candidate's float32 value *and* gradient against a 60-digit mpmath
   evaluation of the exact term on a grid over ``log_r`` in [-80, 80];
3. it keeps the most accurate candidate per region and joins regions with ``torch.where``.

The measured worst-case errors travel with the divergence (``Divergence.accuracy``).

Each term also gets its *slope* ``d term / d log_r`` (``u f''(u)`` and ``u^2 f''(u)``), chosen the
same way but held to value accuracy only: objectives differentiate a term by its slope instead
of by autograd through the form, which takes fewer kernels (:func:`choose` with
``gradient=False``). Every candidate form is kept (``StableTerm.forms``), so that
:func:`specialize` can pick, for the range a similarity declares, the fewest (and cheapest)
forms that are accurate on that range alone, measured there against the same reference.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import mpmath
import numpy as np
import sympy as sp
import torch

from . import exponents, ops
from .budget import attempt
from .evaluate import HUGE, mp_eval, saturations, torch_supported
from .functions import expm1, log1p, sigmoid, softplus
from .parse import U
from .printer import UnprintableError, print_body, print_torch

#: The variable of the composed terms.
LOG_R = sp.Symbol("log_r", real=True)
_V = sp.Symbol("v", positive=True)

#: Target relative error in float32 when choosing forms (the tests demand 1e-5).
TOLERANCE = 1e-6
#: The float32 relative error a term is held to (the margin above is the aim).
TARGET = 1e-5
BREAKS = (
    -40.0,
    -20.0,
    -10.0,
    -5.0,
    -2.0,
    -1.0,
    -0.5,
    -0.1,
    -0.01,
    0.0,
    0.01,
    0.1,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    40.0,
)
#: Every value float32 can hold is held to the target, up to its largest (3.4e38): a form
#: like ``exp(2x)/2`` that overflows in its intermediate just before its result does is not
#: accurate there (``exp(2x - log 2)`` is).
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_TINY = 1e-30
#: How many candidate forms one term gets at most (a count, not a clock: the same text gives
#: the same forms on any machine under any load).
MAX_CANDIDATES = 96
#: Degrees of the Taylor forms around ``log_r = 0`` (see :func:`taylor_forms`).
TAYLOR_DEGREES = (6, 12)


def _grid() -> np.ndarray:
    small = np.logspace(-7, 1, 49)
    points = np.concatenate([np.linspace(-80, 80, 641), small, -small, np.array(BREAKS), [0.0]])
    edges = np.array(BREAKS)
    near = np.concatenate([edges - 1e-3, edges + 1e-3])
    return np.unique(np.concatenate([points, near]).astype(np.float32))


GRID = _grid()


@dataclass(frozen=True)
class Piece:
    """One region ``[low, high)`` of ``log_r`` and the form used there."""

    low: float
    high: float
    expr: sp.Expr
    label: str


@dataclass(frozen=True)
class StableTerm:
    """A composed term as pieces, with its measured float32 accuracy.

    ``forms`` lists every candidate form that was measured (label, expression), the pieces'
    forms among them; ``slope`` is the term's derivative in ``log_r`` as a term of its own
    (chosen for value accuracy), or None for a slope itself.
    """

    exact: sp.Expr  # the term in log_r, exactly as derived
    pieces: tuple[Piece, ...]
    max_rel_error: float  # float32, value (and gradient unless a slope), worst over the grid
    forms: tuple[tuple[str, sp.Expr], ...] = ()
    slope: StableTerm | None = None


@dataclass(frozen=True)
class Specialized:
    """The forms of a term chosen for ``log_r`` in ``[low, high]`` (see :func:`specialize`).

    ``pieces`` are ``(low, high, form)``: ``form`` indexes ``StableTerm.forms``; the first piece
    starts at ``-inf``, the last ends at ``+inf`` (accuracy is only claimed on the range).
    """

    low: float
    high: float
    pieces: tuple[tuple[float, float, int], ...]
    max_rel_error: float  # float32, on the range's grid (value, and gradient if asked)


# ---------------------------------------------------------------------------------- rewrites
def _exp_term(term: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """``k * exp(z)`` with numeric ``k`` as ``(k, z)``."""
    coeff, rest = term.as_coeff_Mul()
    if isinstance(rest, sp.exp):
        return coeff, rest.args[0]
    return None


def _stable_add(expr: sp.Expr) -> sp.Expr:
    terms = list(expr.args)
    constant = sum((t for t in terms if t.is_number), sp.Integer(0))
    if constant == 0:
        return expr
    exps = {i: found for i, t in enumerate(terms) if (found := _exp_term(t))}
    # c + k1 e^z1 + k2 e^z2 with c = -(k1 + k2): each k e^z becomes k expm1(z), the constant
    # vanishes and no two terms cancel near z = 0. Else one term whose k matches -c.
    if exps and sp.simplify(sum(k for k, _ in exps.values()) + constant) == 0:
        rest = [t for j, t in enumerate(terms) if j not in exps and not t.is_number]
        return sp.Add(*(k * expm1(z) for k, z in exps.values()), *rest)
    for i, (k, z) in exps.items():
        if sp.simplify(k + constant) == 0:
            rest = [t for j, t in enumerate(terms) if j != i and not t.is_number]
            return sp.Add(k * expm1(z), *rest)
    return expr


def _stable_log(arg: sp.Expr) -> sp.Expr:
    if isinstance(arg, sp.exp):
        return arg.args[0]
    if arg.is_Add:
        constant = sum((t for t in arg.args if t.is_number), sp.Integer(0))
        rest = arg - constant
        if constant.is_positive and rest != 0:
            found = _exp_term(rest)
            if found and found[0].is_positive:
                return sp.log(constant) + softplus(found[1] + sp.log(found[0] / constant))
            return sp.log(constant) + _stable_log1p(rest / constant)
    return sp.log(arg)


def _stable_log1p(arg: sp.Expr) -> sp.Expr:
    found = _exp_term(arg)
    if found and found[0].is_positive:
        return softplus(found[1] + sp.log(found[0]))
    if isinstance(arg, expm1):
        return arg.args[0]
    return log1p(arg)


def _stable_exp(arg: sp.Expr) -> sp.Expr:
    """``exp(-softplus(w))`` as ``sigmoid(-w)`` and ``exp(w - softplus(w))`` as ``sigmoid(w)``."""
    if isinstance(-arg, softplus):
        return sigmoid(-(-arg).args[0])
    if arg.is_Add:
        found = [t for t in arg.args if isinstance(-t, softplus)]
        if len(found) == 1:
            w = (-found[0]).args[0]
            if sp.expand(arg - found[0] - w) == 0:
                return sigmoid(w)
    return sp.exp(arg)


def stable(expr: sp.Expr) -> sp.Expr:
    """Rewrite with stable primitives, bottom-up (exact: the value never changes)."""
    if expr.is_Atom:
        return expr
    rebuilt = expr.func(*[stable(a) for a in expr.args])
    if rebuilt.is_Add:
        return _stable_add(rebuilt)
    if isinstance(rebuilt, sp.exp):
        return _stable_exp(rebuilt.args[0])
    if isinstance(rebuilt, sp.log):
        return _stable_log(rebuilt.args[0])
    if isinstance(rebuilt, log1p):
        return _stable_log1p(rebuilt.args[0])
    return rebuilt


def _log_space(expr: sp.Expr) -> sp.Expr:
    """``A**-n`` (``A`` a sum) as ``exp(-n * log A)`` with a stable log: gradients that are
    products of tiny factors then never underflow halfway (``(1 + e^x)**-2`` at ``x = 35``)."""
    return expr.replace(
        lambda n: n.is_Pow and n.args[0].is_Add and n.args[1].is_negative,
        lambda n: sp.exp(n.args[1] * _stable_log(stable(n.args[0]))),
    )


def _log1p_form(expr: sp.Expr) -> sp.Expr:
    return expr.replace(
        lambda n: isinstance(n, sp.log) and not n.args[0].is_number,
        lambda n: log1p(sp.factor(sp.cancel(n.args[0] - 1))),
    )


def _reciprocal_log1p_form(expr: sp.Expr) -> sp.Expr:
    """``log(A)`` as ``-log1p(1/A - 1)``: exact near ``A = 1`` and finite where ``A -> 0``."""
    return expr.replace(
        lambda n: isinstance(n, sp.log) and not n.args[0].is_number,
        lambda n: -log1p(sp.factor(sp.cancel(1 / n.args[0] - 1))),
    )


def _hyperbolic(expr: sp.Expr) -> sp.Expr:
    """``log(cosh(z))``, ``cosh``, ``sinh`` and ``tanh`` through ``softplus`` and ``sigmoid``,
    expanded so that polynomial parts cancel exactly: ``u tanh(u - 1) - log(cosh(u - 1))``
    becomes ``1 + log 2 - 2 u sigmoid(2 - 2u) - softplus(2 - 2u)``, finite where ``cosh``
    overflows (``log(cosh(z)) = z + softplus(-2z) - log 2`` for every ``z``)."""
    out = expr.replace(
        lambda n: isinstance(n, sp.log) and isinstance(n.args[0], sp.cosh),
        lambda n: n.args[0].args[0] + softplus(-2 * n.args[0].args[0]) - sp.log(2),
    )
    out = out.replace(sp.tanh, lambda z: 1 - 2 * sigmoid(-2 * z))
    out = out.replace(sp.cosh, lambda z: sp.exp(z + softplus(-2 * z) - sp.log(2)))
    out = out.replace(sp.sinh, lambda z: sp.exp(z - sp.log(2)) * -expm1(-2 * z))
    return sp.expand(out, log=False, power_exp=False, power_base=False, multinomial=False)


def _power_pair(a: sp.Expr, b: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr] | None:
    """``c A**q`` and ``-c B**q`` as ``(c, A, B, q)``."""
    ca, ra = a.as_coeff_Mul()
    cb, rb = b.as_coeff_Mul()
    if ca != -cb or ca == 0:
        return None
    (base_a, q_a), (base_b, q_b) = ra.as_base_exp(), rb.as_base_exp()
    # the exponent is a constant: a number, or one held as a symbol (exponents.abstract)
    if q_a != q_b or q_a == 1 or q_a.free_symbols & (base_a.free_symbols | base_b.free_symbols):
        return None
    if base_a.is_number or base_b.is_number or base_a == base_b:
        return None
    return ca, base_a, base_b, q_a


def _powers_difference(expr: sp.Expr) -> sp.Expr:
    """``c (A**q - B**q)`` as ``c B**q expm1(q log1p((A - B)/B))`` with ``A - B`` simplified:
    no cancellation where ``A`` is close to ``B`` (roots of ``u`` and ``(1 + u)/2`` near
    ``u = 1``, or ``sqrt(u**2 + 1) - u`` for large ``u``)."""

    def rewrite(node: sp.Expr) -> sp.Expr:
        terms = list(node.args)
        for i, j in itertools.permutations(range(len(terms)), 2):
            found = _power_pair(terms[i], terms[j])
            if found is None:
                continue
            c, a, b, q = found
            gap = sp.factor(sp.cancel(a - b))
            if sp.count_ops(gap) >= sp.count_ops(a) + sp.count_ops(b):
                continue
            joined = c * b**q * expm1(q * log1p(sp.factor(sp.cancel(gap / b))))
            rest = [t for k, t in enumerate(terms) if k not in (i, j)]
            return sp.Add(joined, *rest)
        return node

    return expr.replace(lambda n: n.is_Add, rewrite)


def _rationalised(expr: sp.Expr) -> sp.Expr:
    """``sqrt(A) - sqrt(B)`` as ``(A - B) / (sqrt(A) + sqrt(B))`` with ``A - B`` simplified."""

    def rewrite(node: sp.Expr) -> sp.Expr:
        terms = list(node.args)
        for i, j in itertools.permutations(range(len(terms)), 2):
            found = _power_pair(terms[i], terms[j])
            if found is None or found[3] != sp.Rational(1, 2):
                continue
            c, a, b, _ = found
            gap = sp.factor(sp.cancel(a - b))
            joined = c * gap / (sp.sqrt(a) + sp.sqrt(b))
            rest = [t for k, t in enumerate(terms) if k not in (i, j)]
            return sp.Add(joined, *rest)
        return node

    return expr.replace(lambda n: n.is_Add, rewrite)


def _expm1_shifted(expr: sp.Expr) -> sp.Expr:
    """Every ``exp(z)`` as ``1 + expm1(z)``, constants collected: ``log(p e^x + 1 - p)``
    becomes ``log1p(p expm1(x))``, exact near ``x = 0`` whatever ``p``."""
    shifted = expr.replace(
        lambda n: isinstance(n, sp.exp) and not n.args[0].is_number,
        lambda n: 1 + expm1(n.args[0]),
    )
    return stable(sp.expand(shifted, log=False, power_exp=False, power_base=False))


def _constants_in_exponents(expr: sp.Expr) -> sp.Expr:
    """``k A exp(z)`` as ``A exp(z + log k)`` (``A`` free of other exponentials):
    ``exp(2x)/2`` overflows at ``x = 44.4`` where its value (1.8e38) still fits in float32.
    ``expm1(z)`` is first written ``exp(z) - 1`` and the form expanded, so that
    ``-expm1(-2x)/2`` becomes ``1/2 - exp(-2x - log 2)``."""

    def rewrite(node: sp.Expr) -> sp.Expr:
        coeff, rest = node.as_coeff_Mul()
        if not coeff.is_number or coeff in (0, 1, -1):
            return node
        factors = sp.Mul.make_args(rest)
        exps = [f for f in factors if isinstance(f, sp.exp)]
        if len(exps) != 1:
            return node
        sign = 1 if coeff > 0 else -1
        # log k as a rational (2**-100 apart from it): sympy folds exp(z + log k), and
        # exp(z + a float), back into k exp(z), but leaves exp(z + a rational) alone
        shift = sp.Rational(int(sp.floor(sp.log(sign * coeff) * 2**100 + sp.S.Half)), 2**100)
        moved = sp.exp(exps[0].args[0] + shift)
        return sign * sp.Mul(*(moved if f is exps[0] else f for f in factors))

    if expr.has(expm1):
        expr = sp.expand(
            expr.replace(expm1, lambda z: sp.exp(z) - 1),
            log=False,
            power_base=False,
            multinomial=False,
        )
    return expr.replace(lambda n: n.is_Mul, rewrite)


def _as_derived(expr: sp.Expr) -> sp.Expr:
    return expr


_FORMS: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = (
    ("as derived", _as_derived),
    ("factored", sp.factor),
    ("logs expanded", lambda e: sp.expand_log(sp.factor(e), force=True)),
    ("partial fractions", lambda e: sp.apart(sp.factor(e))),
    ("exp form", lambda e: sp.simplify(e.rewrite(sp.exp))),
    ("log1p", _log1p_form),
    ("log1p factored", lambda e: sp.factor(_log1p_form(e))),
    ("log1p of the reciprocal", _reciprocal_log1p_form),
    ("hyperbolic as softplus", _hyperbolic),
    ("powers' difference as expm1", _powers_difference),
    ("rationalised", _rationalised),
)


def _in_log_r(expr: sp.Expr, *, var: sp.Symbol, value: sp.Expr) -> sp.Expr:
    return stable(expr.subs(var, value))


def _printable(expr: sp.Expr) -> bool:
    try:
        print_torch(expr, {LOG_R: "log_r"})
    except UnprintableError:
        return False
    return True


def candidates(term_u: sp.Expr, limit: int = MAX_CANDIDATES) -> list[tuple[str, sp.Expr]]:
    """Equivalent forms of ``term_u`` (a function of ``u``) as functions of ``log_r``.

    At most ``limit`` forms, always the same ones for the same term: the search is bounded by
    counts and expression sizes, and each sympy step's time limit (``attempt``) is only a
    safety net that no ordinary generator comes near.
    """
    found: list[tuple[str, sp.Expr]] = []
    seen: set[sp.Expr] = set()

    def add(name: str, variant: sp.Expr | None) -> None:
        if len(found) >= limit or variant is None or variant in seen:
            return
        if sp.count_ops(variant) > _MAX_OPS or not torch_supported(variant):
            return
        if not _printable(variant):
            return
        seen.add(variant)
        found.append((name, variant))

    later: list[tuple[str, sp.Expr]] = []
    # the rewrites see large-denominator exponents as symbols (see exponents.abstract)
    # (and "as derived" is the term itself, as written)
    (held,), back = exponents.abstract([term_u])
    mirror = held.subs(U, 1 / _V)
    simpler = _bounded(sp.simplify, mirror, 4.0)
    bases = [
        (held, term_u, False),
        (mirror, term_u.subs(U, 1 / _V), True),
        (simpler, exponents.restore(simpler, back), True),
    ]
    for base, written, mirrored in bases:
        if base is None:
            continue
        var = _V if mirrored else U
        to_log_r = sp.exp(-LOG_R) if mirrored else sp.exp(LOG_R)
        for label, form in _FORMS:
            if form is _as_derived:
                shaped = written
            else:
                shaped = exponents.restore(_bounded(form, base), back)
            if shaped is None:
                continue
            expr = _bounded(functools.partial(_in_log_r, var=var, value=to_log_r), shaped)
            if expr is None:
                continue
            name = label + (" (in 1/u)" if mirrored else "")
            spaced = _log_space(expr)
            add(name, expr)
            add(name + ", log space", spaced)
            add(name + ", log space, exps joined", _bounded(_exps_joined, spaced))
            add(name + ", expm1 shifted", _bounded(_expm1_shifted, expr))
            add(name + ", constants in exponents", _moved(spaced))
            later.append((name + ", constants in exponents, expanded", expr))
    for name, expr in later:  # last: on a tie, a form nearer the derivation is kept
        add(name, _moved(sp.expand(expr, log=False, multinomial=False)))
    return found


def _moved(expr: sp.Expr) -> sp.Expr | None:
    """``_constants_in_exponents(expr)``, or None when it moves no constant."""
    moved = _bounded(_constants_in_exponents, expr)
    return None if moved is None or moved == expr else moved


#: Forms larger than this are not measured (nor rewritten further): a bound on size, so the
#: work per term is bounded by counts.
_MAX_OPS = 400


def _bounded(
    step: Callable[[sp.Expr], sp.Expr], expr: sp.Expr, seconds: float = 2.0
) -> sp.Expr | None:
    """``step(expr)``, or None when ``expr`` is too large to rewrite or the step fails; the time
    limit is a safety net only."""
    if sp.count_ops(expr) > _MAX_OPS:
        return None
    return attempt(functools.partial(step, expr), seconds)


def tail_forms(exact: sp.Expr) -> list[tuple[str, sp.Expr]]:
    """``exact`` (a term in ``log_r``) with its growth in a tail factored out, as
    ``±exp(k log_r + log1p(g - 1))`` where ``g = ±exact · exp(-k log_r)`` stays bounded there.

    A term that grows like ``e^(k x)`` while its parts grow faster or cancel
    (``((u^q + 1)/2 - ((u + 1)/2)^q)/(q - 1)`` at ``q = 3/2``: parts of size ``e^(1.5 x)``
    cancel to a value 0.15 of that) overflows in an intermediate before its value leaves
    float32's range; this form does not. ``k`` is read off the term at ``x = ±60`` and ``±70``
    (60-digit mpmath) and kept when it is a multiple of 1/4 with ``|k| > 1`` (the powers of
    ``u`` the generators have); ``log1p`` keeps sympy from folding the logarithm back into a
    product.
    """
    out: list[tuple[str, sp.Expr]] = []
    for side in (1, -1):
        try:
            with mpmath.workdps(60):
                near = mp_eval(exact, {LOG_R: mpmath.mpf(60 * side)})
                far = mp_eval(exact, {LOG_R: mpmath.mpf(70 * side)})
                if isinstance(near, mpmath.mpc) or isinstance(far, mpmath.mpc):
                    continue
                if not (mpmath.isfinite(near) and mpmath.isfinite(far)) or near * far <= 0:
                    continue
                rate = side * (mpmath.log(abs(far)) - mpmath.log(abs(near))) / 10
        except (ZeroDivisionError, ValueError, OverflowError, NotImplementedError, TypeError):
            continue
        quarters = round(float(rate) * 4)
        if abs(quarters) <= 4 or abs(float(rate) * 4 - quarters) > 1e-3:
            continue
        k = sp.Rational(quarters, 4)
        sign = 1 if near > 0 else -1

        def factored(expr: sp.Expr, k: sp.Expr = k, sign: int = sign) -> sp.Expr:
            bounded = sp.powsimp(sp.expand(sign * expr * sp.exp(-k * LOG_R)), combine="exp")
            if bounded.is_number:  # a constant factor: as _constants_in_exponents moves it
                return _constants_in_exponents(sign * bounded * sp.exp(k * LOG_R))
            return sign * sp.exp(k * LOG_R + log1p(stable(bounded) - 1))

        form = _bounded(factored, exact)
        if form is not None and sp.count_ops(form) <= _MAX_OPS and _printable(form):
            out.append((f"growth e^({k} log_r) factored out", form))
    return out


def taylor_forms(exact: sp.Expr) -> list[tuple[str, sp.Expr]]:
    """Taylor polynomials of ``exact`` (a term in ``log_r``) around ``log_r = 0``, in Horner
    form, for the region where a term cancels: at ``u = 1`` a composed term is a difference of
    nearly equal numbers (skew JS, ``exp(u) - E u``), which no closed form avoids everywhere.
    Coefficients come from a 60-digit mpmath differentiation of the exact term."""

    def value(x: mpmath.mpf) -> mpmath.mpf:
        out = mp_eval(exact, {LOG_R: x})
        return out.real if isinstance(out, mpmath.mpc) else out

    out: list[tuple[str, sp.Expr]] = []
    for degree in TAYLOR_DEGREES:
        try:
            with mpmath.workdps(60):
                try:
                    coefficients = mpmath.taylor(value, 0, degree)
                except (ZeroDivisionError, ValueError):
                    coefficients = mpmath.taylor(value, 0, degree, method="quad", radius=0.25)
        except (ZeroDivisionError, ValueError, OverflowError, NotImplementedError, TypeError):
            return out
        if not all(mpmath.isfinite(c) for c in coefficients):
            return out
        poly: sp.Expr = sp.Float(str(coefficients[-1]), 25)
        for c in reversed(coefficients[:-1]):
            poly = sp.Float(str(c), 25) + LOG_R * poly
        out.append((f"Taylor series at log_r = 0, degree {degree}", poly))
    return out


def _exps_joined(expr: sp.Expr) -> sp.Expr:
    """Products of exponentials as one exponential (``exp(a) exp(b) = exp(a + b)``), which
    can then become a ``sigmoid``: one kernel instead of several."""
    return stable(sp.powsimp(expr, combine="exp"))


# --------------------------------------------------------------------------------- selection
@functools.lru_cache(maxsize=16384)  # overflow_edges and reference ask for the same points
def _exact_at(expr: sp.Expr, x: float) -> float:
    """``expr`` at ``log_r = x`` to float64, exact: evaluated at 60 digits and again at more,
    until two evaluations agree (``1/u - 1/(u + 1) - 1/(u + 1)**2`` at ``u = e^80`` cancels 70
    digits); NaN where undefined, not finite, or not resolved at 960 digits."""
    previous = None
    for digits in (60, 120, 240, 480, 960):
        with mpmath.workdps(digits):
            saturations[0] = 0
            try:
                value = mp_eval(expr, {LOG_R: mpmath.mpf(x)})
            except (ZeroDivisionError, ValueError, OverflowError):
                return math.nan
            value = value.real if isinstance(value, mpmath.mpc) else value
            if saturations[0]:
                # a part passed 2**MAX_BITS and was saturated: the result (HUGE - HUGE = 0, say)
                # is not the exact value, which is beyond float32 anyway
                return math.inf if abs(value) >= HUGE else math.nan
            if not mpmath.isfinite(value):
                return math.nan
            if previous is not None and abs(value - previous) <= mpmath.mpf(10) ** -20 * abs(value):
                return float(value)
            if previous is not None and value == 0 and previous == 0:
                return 0.0
            previous = value
    return math.nan


def reference(
    exact: sp.Expr, grid: np.ndarray = GRID, gradient: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """``exact`` (and its derivative, unless ``gradient=False``) at the grid points, from an
    mpmath evaluation at 60 digits or more (see :func:`_exact_at`); NaN where it is undefined
    or not finite."""
    exprs = [exact, sp.diff(exact, LOG_R)] if gradient else [exact]
    out = [np.array([_exact_at(expr, float(x)) for x in grid]) for expr in exprs]
    for values in out:
        values[np.isinf(values)] = np.nan
    return out[0], (out[1] if gradient else None)


def _relative_error(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    checkable = np.isfinite(want) & (np.abs(want) <= _FLOAT32_MAX)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got - want) / np.maximum(np.abs(want), _TINY)
    err = np.where(np.isfinite(got), err, np.inf)
    return np.where(checkable, err, 0.0)


@functools.lru_cache(maxsize=8192)
def form_function(expr: sp.Expr) -> Callable[[torch.Tensor], torch.Tensor]:
    """The torch function the compiled module runs for ``expr`` (a form in ``log_r``): the
    printer's source text compiled in memory, so what is measured is the code that runs.

    Example:
        >>> fn = form_function(expm1(LOG_R))
        >>> float(fn(torch.tensor(1e-10, dtype=torch.float64)))
        1.00000000005e-10
    """
    body = print_body(expr, {LOG_R: "log_r"}, "log_r")
    namespace: dict[str, Any] = {"torch": torch, "F": torch.nn.functional, "ops": ops}
    exec(compile(f"def form(log_r):\n    return {body}\n", "<fmicl form>", "exec"), namespace)
    return cast(Callable[[torch.Tensor], torch.Tensor], namespace["form"])


def _run(expr: sp.Expr, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return form_function(expr)(x)


def measure(
    expr: sp.Expr, want: np.ndarray, want_grad: np.ndarray | None, grid: np.ndarray = GRID
) -> np.ndarray:
    """Per-grid-point float32 relative error of ``expr``, run as the printed code the module
    holds: value and gradient (the worse), or the value alone when ``want_grad`` is None.
    Where the form is not finite in bfloat16 although the exact value fits, the error is
    ``inf``."""
    x = torch.tensor(grid, dtype=torch.float32, requires_grad=want_grad is not None)
    try:
        y = _run(expr, x)
        error = _relative_error(y.detach().double().numpy(), want)
        if want_grad is not None:
            (grad,) = torch.autograd.grad(y.sum(), x)
            error = np.maximum(error, _relative_error(grad.double().numpy(), want_grad))
    except (NotImplementedError, RuntimeError, UnprintableError):
        return np.full(grid.shape, np.inf)
    return np.maximum(error, _half_precision_failures(expr, want, want_grad, grid))


def _half_precision_failures(
    expr: sp.Expr, want: np.ndarray, want_grad: np.ndarray | None, grid: np.ndarray
) -> np.ndarray:
    """``inf`` where a form is not finite in bfloat16 although the exact value fits.

    bfloat16 has float32's range but 8 bits of mantissa, so an intermediate can round to an
    exact 0 or 1 that float32 keeps apart and a later log or division turns into infinity.
    (float16 is not asked for: its range ends at 65504, and forms good in float32 over
    [-80, 80] are bound to overflow in it; computing the terms in float16 is not supported.)
    """
    failures = np.zeros(grid.shape)
    for dtype in (torch.bfloat16,):
        fits = 0.5 * torch.finfo(dtype).max
        ok = np.abs(want) <= fits
        if want_grad is not None:
            ok &= np.abs(want_grad) <= fits
        # a point rounds to a nearby bfloat16 (0.16 apart at log_r = 80, 0.009 at 4.4): held
        # to being finite only where its neighbours on the (sorted) grid fit as well, so that
        # the rounded point's exact value fits too (exp(exp(x)) doubles over 0.009 at x = 4.4)
        fits_here = ok.copy()
        ok[1:] &= fits_here[:-1]
        ok[:-1] &= fits_here[1:]
        x = torch.tensor(grid, dtype=dtype, requires_grad=want_grad is not None)
        try:
            y = _run(expr, x)
            finite = torch.isfinite(y.detach()).numpy()
            if want_grad is not None:
                (grad,) = torch.autograd.grad(y.sum(), x)
                finite &= torch.isfinite(grad).numpy()
        except (NotImplementedError, RuntimeError, UnprintableError):
            return np.full(grid.shape, np.inf)
        failures = np.where(ok & ~finite, np.inf, failures)
    return failures


def _segments(low: float = -np.inf, high: float = np.inf) -> list[tuple[float, float]]:
    """The regions between :data:`BREAKS`, cut to ``[low, high]``."""
    edges = [low, *(b for b in BREAKS if low < b < high), high]
    return list(itertools.pairwise(edges))


def _cover(
    table: np.ndarray, costs: np.ndarray | None = None, bad: np.ndarray | None = None
) -> list[int]:
    """A form per segment, using as few distinct forms as the tolerance allows.

    Greedy set cover: take the form that is accurate on the most segments still uncovered
    (ties: the cheaper form when ``costs`` are given, then the smaller worst error there);
    a segment no form covers gets a form within :data:`TARGET` there if there is one, then
    the form with the fewest points over the tolerance there (``bad``), then the smallest
    worst error. Fewer distinct forms means fewer tensors computed per call.
    """
    good = table <= TOLERANCE
    costs = np.zeros(table.shape[0]) if costs is None else costs
    bad = np.zeros(table.shape) if bad is None else bad
    chosen = [-1] * table.shape[1]
    left = set(range(table.shape[1]))
    while left:
        columns = sorted(left)
        counts = good[:, columns].sum(axis=1)
        if counts.max() == 0:
            # no form is within the margin here: a form within the target still beats one
            # that is not (a form that is inf at one point loses to one at 1.5e-6 throughout)
            for s in columns:
                over = table[:, s] > TARGET
                chosen[s] = int(np.lexsort((table[:, s], bad[:, s], over))[0])
            break
        worst = table[:, columns].max(axis=1)
        best = int(np.lexsort((worst, costs, -counts))[0])
        for s in columns:
            if good[best, s]:
                chosen[s] = best
                left.discard(s)
    return chosen


def _masks(grid: np.ndarray, segments: list[tuple[float, float]]) -> list[np.ndarray]:
    last = len(segments) - 1
    return [
        (lo <= grid) & ((hi > grid) | (i == last and hi >= grid))  # the range's end included
        for i, (lo, hi) in enumerate(segments)
    ]


def _table(
    errors: list[np.ndarray], grid: np.ndarray, segments: list[tuple[float, float]]
) -> np.ndarray:
    masks = _masks(grid, segments)
    return np.array([[err[m].max(initial=0.0) for m in masks] for err in errors])


def _bad_table(
    errors: list[np.ndarray], grid: np.ndarray, segments: list[tuple[float, float]]
) -> np.ndarray:
    masks = _masks(grid, segments)
    return np.array([[(err[m] > TOLERANCE).sum() for m in masks] for err in errors])


def overflow_edges(exact: sp.Expr) -> np.ndarray:
    """float32 points just inside each place where ``|exact|`` (a term in ``log_r``) passes
    float32's largest value on ``[-80, 80]``: there a form whose intermediate overflows a
    little before its value does (``exp(2x)/2``) is inf while the value still fits, in a band
    that can be narrower than the grid's step (0.27 wide for ``-(2/3) e^(-1.5 x)``). Each edge
    is found by bisection between neighbouring grid points (60-digit mpmath); the points are
    0.01 to 0.2 inside it (closer, float32 rounding alone may overflow)."""
    values = np.array([_exact_at(exact, float(x)) for x in GRID])
    fits = np.isfinite(values) & (np.abs(values) <= _FLOAT32_MAX)
    over = np.abs(values) > _FLOAT32_MAX  # NaN (undefined) is neither
    points: list[float] = []
    for i in range(len(GRID) - 1):
        if not ((fits[i] and over[i + 1]) or (over[i] and fits[i + 1])):
            continue
        inside, outside = (float(GRID[i]), float(GRID[i + 1]))
        if over[i]:
            inside, outside = outside, inside
        for _ in range(40):
            middle = (inside + outside) / 2
            value = _exact_at(exact, middle)
            if math.isfinite(value) and abs(value) <= _FLOAT32_MAX:
                inside = middle
            else:
                outside = middle
        step = 1.0 if outside > inside else -1.0
        points += [inside - step * d for d in (0.01, 0.03, 0.1, 0.2)]
    return np.array(points, dtype=np.float32)


def choose(term_u: sp.Expr, *, gradient: bool = False) -> StableTerm:
    """The most accurate piecewise form of a composed term given as a function of ``u``.

    Forms are held to float32 value accuracy (the terms are differentiated by their slopes,
    which are terms of their own); ``gradient=True`` also holds their autograd gradient to it.
    Candidates are the rewritten closed forms (:func:`candidates`) and Taylor polynomials
    around ``log_r = 0`` (:func:`taylor_forms`).
    """
    exact = term_u.subs(U, sp.exp(LOG_R))
    options = candidates(term_u)
    if not options:
        options = [("as derived", exact)]
    extra = taylor_forms(exact) + tail_forms(exact)
    options += [form for form in extra if form[1] not in dict(options).values()]
    grid = np.unique(np.concatenate([GRID, overflow_edges(exact)]))
    want, want_grad = reference(exact, grid, gradient)
    errors = [measure(expr, want, want_grad, grid) for _, expr in options]
    segments = _segments()
    table = _table(errors, grid, segments)

    chosen = _cover(table, bad=_bad_table(errors, grid, segments))
    pieces: list[Piece] = []
    for (lo, hi), k in zip(segments, chosen, strict=True):
        if pieces and pieces[-1].label == options[k][0]:
            pieces[-1] = Piece(pieces[-1].low, hi, pieces[-1].expr, pieces[-1].label)
        else:
            pieces.append(Piece(lo, hi, options[k][1], options[k][0]))
    worst = max(table[k, s] for s, k in enumerate(chosen))
    return StableTerm(exact, tuple(pieces), float(worst), tuple(options))


def range_grid(low: float, high: float) -> np.ndarray:
    """The float32 points on which :func:`specialize` measures ``[low, high]``: both ends, 257
    evenly spaced points, the stabilizer's grid points inside, and points 1e-3 either side of
    each break inside."""
    grid = GRID
    inside = grid[(grid >= low) & (grid <= high)]
    even = np.linspace(low, high, 257)
    points = np.concatenate([[low, high], even, inside]).astype(np.float32)
    # float32 rounding may step just outside [low, high]: the similarity never gives those.
    points = np.clip(points, np.float32(low), np.float32(high))
    return np.unique(points)


def _cost(expr: sp.Expr) -> int:
    """Operations in a form: a proxy for the kernels it launches."""
    return int(sp.count_ops(expr))


def specialize(term: StableTerm, low: float, high: float, *, gradient: bool = False) -> Specialized:
    """The fewest forms of ``term`` (among ``term.forms``) that are accurate on ``[low, high]``.

    Measured, not assumed: every form is evaluated in float32 (and checked finite in bfloat16)
    on :func:`range_grid` against the 60-digit mpmath reference of ``term.exact``, value only
    (``gradient=False``: the caller differentiates by the term's slope) or value and gradient;
    the regions between :data:`BREAKS` inside the range are covered as :func:`choose` covers
    [-80, 80], ties going to the form with fewer operations. A range on which one form is
    accurate gets that form alone: no masks, no second form computed.

    Example:
        >>> import sympy as sp
        >>> u = sp.Symbol("u", positive=True)
        >>> vlc = choose((u**2 + 2*u - 3) / (u + 1) ** 2)  # VLC's positive term
        >>> len({piece.label for piece in vlc.pieces})  # forms on [-80, 80]
        2
        >>> [vlc.forms[k][0] for _, _, k in specialize(vlc, -4.0, 0.0).pieces]
        ['factored, log space']
    """
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"specialize needs a finite range low <= high, got [{low}, {high}]")
    forms = term.forms or tuple((p.label, p.expr) for p in term.pieces)
    grid = range_grid(low, high)
    want, want_grad = reference(term.exact, grid, gradient)
    errors = [measure(expr, want, want_grad, grid) for _, expr in forms]
    segments = _segments(low, high)
    table = _table(errors, grid, segments)
    chosen = _cover(
        table,
        np.array([_cost(expr) for _, expr in forms], dtype=float),
        _bad_table(errors, grid, segments),
    )
    pieces: list[tuple[float, float, int]] = []
    for (lo, hi), k in zip(segments, chosen, strict=True):
        if pieces and pieces[-1][2] == k:
            pieces[-1] = (pieces[-1][0], hi, k)
        else:
            pieces.append((lo, hi, k))
    pieces[0] = (-math.inf, pieces[0][1], pieces[0][2])
    pieces[-1] = (pieces[-1][0], math.inf, pieces[-1][2])
    worst = max(table[k, s] for s, k in enumerate(chosen))
    return Specialized(float(low), float(high), tuple(pieces), float(worst))


def midpoint(piece: Piece) -> float:
    """A point inside the piece, where the form is certainly finite."""
    if np.isinf(piece.low):
        return piece.high - 1.0
    if np.isinf(piece.high):
        return piece.low + 1.0
    return (piece.low + piece.high) / 2
