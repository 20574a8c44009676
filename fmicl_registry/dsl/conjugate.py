"""The convex conjugate ``f*(t) = sup_{u > 0} (u t - f(u))`` (Lu et al. 2023).

Closed form: solve ``f'(u) = t`` for ``u``, keep the root with ``u = 1`` at ``t = f'(1)``, and
substitute, ``f*(t) = u(t) t - f(u(t))``. The result is checked against the Fenchel-Young
equality ``f*(f'(u)) = u f'(u) - f(u)`` at several points in 40-digit arithmetic.

Numeric form, when sympy finds no usable closed form (or it needs a function torch lacks, such
as Lambert W for Jeffrey): ``f*(t) = negative_term(s)`` where ``positive_term(s) = t``, i.e. the
stable composed terms evaluated at the root ``s = log u`` found by bisection. The derivative is
the implicit-function identity ``d f*/dt = (f')^{-1}(t) = exp(s)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import sympy as sp
import torch

from . import exponents
from .budget import attempt
from .evaluate import mp_eval, torch_supported
from .parse import U

#: The variable of the conjugate.
T = sp.Symbol("t", real=True)
_CHECK_POINTS = ("1/10", "1/2", "2", "7", "1/1000", "1000")


@dataclass
class Conjugate:
    """What sympy found: the closed form (or None), whether torch can run it, and why not."""

    expr: sp.Expr | None
    compilable: bool
    note: str
    below: sp.Expr | None = None  # f* below the domain: -f(0+), the sup taken as u -> 0
    top: sp.Expr | None = None  # f* at the domain's finite upper end (its left limit)


def _close(a: Any, b: Any) -> bool:
    a = a.real if isinstance(a, mpmath.mpc) and abs(a.imag) < 1e-30 else a
    b = b.real if isinstance(b, mpmath.mpc) and abs(b.imag) < 1e-30 else b
    return bool(abs(a - b) <= mpmath.mpf(10) ** -25 * max(1, abs(b)))


def fenchel_young_holds(fstar: sp.Expr, f: sp.Expr, first: sp.Expr) -> bool:
    """``f*(f'(u)) == u f'(u) - f(u)`` at a few ``u`` (40 digits)."""
    with mpmath.workdps(40):
        for text in _CHECK_POINTS:
            u = mpmath.mpf(sp.Rational(text).p) / sp.Rational(text).q
            try:
                t = mp_eval(first, {U: u})
                want = u * t - mp_eval(f, {U: u})
                got = mp_eval(fstar, {T: t})
            except (ZeroDivisionError, ValueError, OverflowError, NotImplementedError):
                return False
            if not _close(got, want):
                return False
    return True


def _within(expr: sp.Expr, domain: sp.Interval) -> sp.Expr:
    """Simplify knowing ``t`` lies in the domain: ``Abs(t - 1)`` becomes ``1 - t`` for t < 1."""
    if domain.sup.is_finite:
        gap = domain.sup - T  # positive inside the domain
    elif domain.inf.is_finite:
        gap = T - domain.inf
    else:
        return expr
    s = sp.Symbol("s", positive=True)
    inside = expr.subs(T, domain.sup - s if domain.sup.is_finite else domain.inf + s)
    refined = attempt(lambda: sp.simplify(sp.simplify(inside).subs(s, gap)), 3.0)
    if refined is None or sp.count_ops(refined) >= sp.count_ops(expr):
        return expr
    return refined


def closed_form(f: sp.Expr, first: sp.Expr, domain: sp.Interval | None = None) -> Conjugate:
    """Solve ``f'(u) = t`` and pick the branch through ``(t, u) = (f'(1), 1)``.

    sympy solves and simplifies with large-denominator exponents held as symbols
    (``exponents.abstract``: ``u**(137/100)`` as ``u**(1 + e)``), which it does in
    milliseconds where the numbers take it seconds; the numbers are put back before any check.
    """
    (f_held, first_held), back = exponents.abstract([f, first], exponents.SOLVE_DEGREE)
    roots = attempt(lambda: sp.solve(sp.Eq(first_held, T), U), 4.0)
    if not roots:
        return Conjugate(None, False, "numeric: sympy found no closed-form solution of f'(u) = t")
    t_at_one = first.subs(U, 1)
    branch = None
    with mpmath.workdps(40):
        for root in roots:
            at = exponents.restore(root, back)
            value = attempt(functools.partial(mp_eval, at, {T: mp_eval(t_at_one, {})}), 2.0)
            if value is not None and _close(value, mpmath.mpf(1)):
                branch = root
                break
    if branch is None:
        return Conjugate(None, False, "numeric: no root of f'(u) = t passes through u = 1")
    raw_held = T * branch - f_held.subs(U, branch)
    held = attempt(lambda: sp.simplify(raw_held), 4.0) or raw_held
    raw, fstar = exponents.restore(raw_held, back), exponents.restore(held, back)
    if back and exponents.degree([fstar]) <= exponents.MAX_DEGREE:
        # small exponents (u**(2/3)) sympy simplifies fast with their values, and further
        # than with symbols ((A**(-4/3))**(1/4) is A**(-1/3) where A > 0)
        shorter = attempt(lambda: sp.simplify(fstar), 4.0)
        if shorter is not None and sp.count_ops(shorter) < sp.count_ops(fstar):
            fstar = shorter
        held, back = fstar, {}
    if domain is not None:
        fstar = exponents.restore(_within(held, domain), back)
    if not fenchel_young_holds(fstar, f, first):
        if fenchel_young_holds(raw, f, first):
            fstar = raw
        else:
            return Conjugate(None, False, "numeric: the closed form failed the Fenchel-Young check")
    if not torch_supported(fstar):
        names = sorted(
            {type(n).__name__ for n in sp.preorder_traversal(fstar) if n.is_Function}
            - {"exp", "log", "Abs", "sinh", "cosh", "tanh", "atan", "asinh"}
        )
        return Conjugate(
            fstar, False, f"numeric: the closed form uses {', '.join(names)}, which torch lacks"
        )
    below = top = None
    if domain is not None and domain.inf.is_finite:
        at_zero = attempt(lambda: sp.limit(f, U, 0, "+"), 2.0)
        below = None if at_zero is None or at_zero.has(sp.Limit) else -at_zero
    if domain is not None and domain.sup.is_finite:
        found = attempt(lambda: sp.limit(fstar, T, domain.sup, "-"), 2.0)
        top = None if found is None or found.has(sp.Limit) else found
    return Conjugate(fstar, True, "closed form", below, top)


# ------------------------------------------------------------------------- numeric conjugate
_BRACKET = 200.0
_STEPS = 90


def _root(t: torch.Tensor, positive_term: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``s`` with ``positive_term(s) = t`` by bisection on ``[-200, 200]`` (f' is monotone)."""
    low = torch.full_like(t, -_BRACKET)
    high = torch.full_like(t, _BRACKET)
    for _ in range(_STEPS):
        mid = (low + high) / 2
        below = positive_term(mid) < t
        low = torch.where(below, mid, low)
        high = torch.where(below, high, mid)
    return (low + high) / 2


class _NumericConjugate(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(
        t: torch.Tensor,
        positive_term: Callable[[torch.Tensor], torch.Tensor],
        negative_term: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        work = t.double() if t.dtype in (torch.float16, torch.bfloat16, torch.float32) else t
        s = _root(work, positive_term)
        value = negative_term(s)
        top = positive_term(torch.full_like(work, _BRACKET))
        value = torch.where(work > top, torch.full_like(value, float("inf")), value)
        value = torch.where(torch.isnan(work), work, value)
        return value.to(t.dtype), s.to(t.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, _grad_s: Any) -> tuple[Any, None, None]:
        (s,) = ctx.saved_tensors
        return grad * torch.exp(s), None, None


def numeric_conjugate(
    positive_term: Callable[[torch.Tensor], torch.Tensor],
    negative_term: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f*`` from the composed terms: ``f*(t) = negative_term(s)`` where ``positive_term(s) = t``.

    Accurate to float64 round-off inside the conjugate domain, ``+inf`` above it; the gradient
    is ``exp(s) = (f')^{-1}(t)``.
    """

    def f_star(t: torch.Tensor) -> torch.Tensor:
        value, _ = _NumericConjugate.apply(t, positive_term, negative_term)
        return value

    return f_star
