"""Choose numerically stable forms of the composed terms (PAPER.md section 2).

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
import time
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp
import torch

from .budget import attempt
from .evaluate import mp_eval, torch_eval, torch_supported
from .functions import expm1, log1p, sigmoid, softplus
from .parse import U
from .printer import UnprintableError, print_torch

#: The variable of the composed terms.
LOG_R = sp.Symbol("log_r", real=True)
_V = sp.Symbol("v", positive=True)

#: Target relative error in float32 when choosing forms (the tests demand 1e-5).
TOLERANCE = 1e-6
BREAKS = (
    -40.0,
    -20.0,
    -10.0,
    -5.0,
    -2.0,
    -1.0,
    -0.5,
    -0.1,
    0.0,
    0.1,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    40.0,
)
#: Time allowed for writing candidate forms of one term (each form gets at most a second).
CANDIDATE_SECONDS = 3.0
#: The same for a slope (``u f''``, ``u^2 f''``): simpler, and the definition's budget is shared.
SLOPE_CANDIDATE_SECONDS = 1.5
#: Values within a factor 8 of float32's largest (3.4e38) are not held to the target: a form
#: like exp(2x)/2 overflows in its intermediate just before its result does.
_FLOAT32_MAX = 3.4e38 / 8
_TINY = 1e-30


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


_FORMS: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = (
    ("as derived", lambda e: e),
    ("factored", sp.factor),
    ("logs expanded", lambda e: sp.expand_log(sp.factor(e), force=True)),
    ("partial fractions", lambda e: sp.apart(sp.factor(e))),
    ("exp form", lambda e: sp.simplify(e.rewrite(sp.exp))),
    ("log1p", _log1p_form),
    ("log1p factored", lambda e: sp.factor(_log1p_form(e))),
    ("log1p of the reciprocal", _reciprocal_log1p_form),
)


def _in_log_r(expr: sp.Expr, var: sp.Symbol, value: sp.Expr) -> sp.Expr:
    return stable(expr.subs(var, value))


def _printable(expr: sp.Expr) -> bool:
    try:
        print_torch(expr, {LOG_R: "log_r"})
    except UnprintableError:
        return False
    return True


def candidates(term_u: sp.Expr, seconds: float = CANDIDATE_SECONDS) -> list[tuple[str, sp.Expr]]:
    """Equivalent forms of ``term_u`` (a function of ``u``) as functions of ``log_r``."""
    found: list[tuple[str, sp.Expr]] = []
    seen: set[sp.Expr] = set()
    stop = time.monotonic() + seconds
    mirror = term_u.subs(U, 1 / _V)
    bases = [(term_u, False), (mirror, True), (attempt(lambda: sp.simplify(mirror), 2.0), True)]
    for base, mirrored in bases:
        if base is None:
            continue
        var = _V if mirrored else U
        to_log_r = sp.exp(-LOG_R) if mirrored else sp.exp(LOG_R)
        for label, form in _FORMS:
            if time.monotonic() > stop:
                break  # enough forms for a pathological term: measure what there is
            shaped = attempt(functools.partial(form, base), 1.0)
            if shaped is None:
                continue
            expr = attempt(functools.partial(_in_log_r, shaped, var, to_log_r), 1.0)
            if expr is None:
                continue
            name = label + (" (in 1/u)" if mirrored else "")
            spaced = _log_space(expr)
            variants = [(expr, ""), (spaced, ", log space")]
            joined = attempt(functools.partial(_exps_joined, spaced), 1.0)
            if joined is not None:
                variants.append((joined, ", log space, exps joined"))
            for variant, suffix in variants:
                if variant in seen or not torch_supported(variant) or not _printable(variant):
                    continue
                seen.add(variant)
                found.append((name + suffix, variant))
    return found


def _exps_joined(expr: sp.Expr) -> sp.Expr:
    """Products of exponentials as one exponential (``exp(a) exp(b) = exp(a + b)``), which
    can then become a ``sigmoid``: one kernel instead of several."""
    return stable(sp.powsimp(expr, combine="exp"))


# --------------------------------------------------------------------------------- selection
def reference(
    exact: sp.Expr, grid: np.ndarray = GRID, gradient: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """``exact`` (and its derivative, unless ``gradient=False``) at the grid points, from a
    60-digit mpmath evaluation; NaN where it is undefined or not finite."""
    exprs = [exact, sp.diff(exact, LOG_R)] if gradient else [exact]
    out: list[list[float]] = [[] for _ in exprs]
    with mpmath.workdps(60):
        for x in grid:
            point = {LOG_R: mpmath.mpf(float(x))}
            for expr, values in zip(exprs, out, strict=True):
                try:
                    value = mp_eval(expr, point)
                    value = value.real if isinstance(value, mpmath.mpc) else value
                    values.append(float(value) if mpmath.isfinite(value) else np.nan)
                except (ZeroDivisionError, ValueError, OverflowError):
                    values.append(np.nan)
    return np.array(out[0]), (np.array(out[1]) if gradient else None)


def _relative_error(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    checkable = np.isfinite(want) & (np.abs(want) <= _FLOAT32_MAX)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got - want) / np.maximum(np.abs(want), _TINY)
    err = np.where(np.isfinite(got), err, np.inf)
    return np.where(checkable, err, 0.0)


def measure(
    expr: sp.Expr, want: np.ndarray, want_grad: np.ndarray | None, grid: np.ndarray = GRID
) -> np.ndarray:
    """Per-grid-point float32 relative error of ``expr``: value and gradient (the worse), or the
    value alone when ``want_grad`` is None. Where the form is not finite in bfloat16 although
    the exact value fits, the error is ``inf``."""
    x = torch.tensor(grid, dtype=torch.float32, requires_grad=want_grad is not None)
    try:
        y = torch_eval(expr, {LOG_R: x})
        error = _relative_error(y.detach().double().numpy(), want)
        if want_grad is not None:
            (grad,) = torch.autograd.grad(y.sum(), x)
            error = np.maximum(error, _relative_error(grad.double().numpy(), want_grad))
    except (NotImplementedError, RuntimeError):
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
        x = torch.tensor(grid, dtype=dtype, requires_grad=want_grad is not None)
        try:
            y = torch_eval(expr, {LOG_R: x})
            finite = torch.isfinite(y.detach()).numpy()
            if want_grad is not None:
                (grad,) = torch.autograd.grad(y.sum(), x)
                finite &= torch.isfinite(grad).numpy()
        except (NotImplementedError, RuntimeError):
            return np.full(grid.shape, np.inf)
        failures = np.where(ok & ~finite, np.inf, failures)
    return failures


def _segments(low: float = -np.inf, high: float = np.inf) -> list[tuple[float, float]]:
    """The regions between :data:`BREAKS`, cut to ``[low, high]``."""
    edges = [low, *(b for b in BREAKS if low < b < high), high]
    return list(itertools.pairwise(edges))


def _cover(table: np.ndarray, costs: np.ndarray | None = None) -> list[int]:
    """A form per segment, using as few distinct forms as the tolerance allows.

    Greedy set cover: take the form that is accurate on the most segments still uncovered
    (ties: the cheaper form when ``costs`` are given, then the smaller worst error there);
    segments no form covers get their most accurate one. Fewer distinct forms means fewer
    tensors computed per call.
    """
    good = table <= TOLERANCE
    costs = np.zeros(table.shape[0]) if costs is None else costs
    chosen = [-1] * table.shape[1]
    left = set(range(table.shape[1]))
    while left:
        columns = sorted(left)
        counts = good[:, columns].sum(axis=1)
        if counts.max() == 0:
            for s in columns:
                chosen[s] = int(table[:, s].argmin())
            break
        worst = table[:, columns].max(axis=1)
        best = int(np.lexsort((worst, costs, -counts))[0])
        for s in columns:
            if good[best, s]:
                chosen[s] = best
                left.discard(s)
    return chosen


def _table(
    errors: list[np.ndarray], grid: np.ndarray, segments: list[tuple[float, float]]
) -> np.ndarray:
    last = len(segments) - 1
    masks = [
        (lo <= grid) & ((hi > grid) | (i == last and hi >= grid))  # the range's end included
        for i, (lo, hi) in enumerate(segments)
    ]
    return np.array([[err[m].max(initial=0.0) for m in masks] for err in errors])


def choose(term_u: sp.Expr, *, gradient: bool = True) -> StableTerm:
    """The most accurate piecewise form of a composed term given as a function of ``u``.

    ``gradient=False`` holds the forms to value accuracy only (for a slope, whose own
    derivative is not what the objectives use; its candidates get
    :data:`SLOPE_CANDIDATE_SECONDS`).
    """
    exact = term_u.subs(U, sp.exp(LOG_R))
    options = candidates(term_u, CANDIDATE_SECONDS if gradient else SLOPE_CANDIDATE_SECONDS)
    if not options:
        options = [("as derived", exact)]
    want, want_grad = reference(exact, GRID, gradient)
    errors = [measure(expr, want, want_grad) for _, expr in options]
    segments = _segments()
    table = _table(errors, GRID, segments)

    chosen = _cover(table)
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
    chosen = _cover(table, np.array([_cost(expr) for _, expr in forms], dtype=float))
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
