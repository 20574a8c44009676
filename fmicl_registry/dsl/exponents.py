"""Rational exponents with large denominators, held as symbols while sympy rewrites.

A family's parameter given to three digits makes exponents like ``u**(237/100)``. sympy's
polynomial algorithms (``factor``, ``apart``, ``cancel``, ``solve``) read such a term as a
polynomial in ``u**(1/100)`` of degree 237 and factor it (Zassenhaus), which takes seconds to
minutes where ``u**(3/2)`` takes milliseconds; the rewrites then only hit their time limits.

None of the rewrites needs the exponent's value: ``u**(2 + e)`` factors, solves and simplifies
the same for any positive non-integer ``e``. :func:`abstract` therefore writes each such
exponent as an integer plus or minus a symbol ``e`` standing for its fractional part (the same
symbol for ``37/100`` and ``63/100 = 1 - 37/100``, so that ``u**(37/100)`` and ``u**(-63/100)``
stay related), the rewrite runs on that, and :func:`restore` puts the numbers back. The
rewrites are identities in ``e`` for every positive non-integer ``e``, so also at its value,
and every form is measured against the exact term before it is used.

Only expressions whose exponents would make a polynomial of degree above
:data:`MAX_DEGREE` are abstracted (``u**(3/2)``, ``u**(2/3)`` and ``u**(7/10)`` are left as
they are: sympy handles them fast and exactly), and square roots never are (rewrites such as
``sqrt(A) - sqrt(B) = (A - B)/(sqrt(A) + sqrt(B))`` look for them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sympy as sp

#: Above this degree of the polynomial sympy would form (in ``x**(1/L)``, ``L`` the common
#: denominator of the exponents), exponents are abstracted. Factoring ``u**(p/q) + c`` takes
#: 0.02 s at ``p = 41`` or ``37``, 0.3 s at ``p = 63``, 2.3 s at ``p = 237`` (one core).
MAX_DEGREE = 24
#: The same bound for ``solve``, which finds every root of that polynomial (``u**(7/10) = c``
#: has seven): 0.5 s at degree 5 or 6, 3 to 4 s at degree 7 (``u**(7/10)``, ``u**(7/4)``).
SOLVE_DEGREE = 1

Restore = dict[sp.Symbol, sp.Rational]


def _exponents(exprs: Sequence[sp.Expr]) -> set[sp.Rational]:
    """The non-integer rational exponents other than halves."""
    found: set[sp.Rational] = set()
    for expr in exprs:
        for node in sp.preorder_traversal(expr):
            if node.is_Pow and node.exp.is_Rational and node.exp.q > 2:
                found.add(node.exp)
    return found


def degree(exprs: Sequence[sp.Expr]) -> int:
    """The degree of the polynomial in ``x**(1/L)`` that sympy would form from the exponents
    (1 when there are none to abstract).

    Example:
        >>> u = sp.Symbol("u", positive=True)
        >>> degree([u ** sp.Rational(237, 100) + u ** sp.Rational(1, 4)])
        237
    """
    exponents = _exponents(exprs)
    if not exponents:
        return 1
    common = math.lcm(*(int(e.q) for e in exponents))
    return max(abs(int(e.p)) * common // int(e.q) for e in exponents)


def abstract(
    exprs: Sequence[sp.Expr], max_degree: int = MAX_DEGREE
) -> tuple[list[sp.Expr], Restore]:
    """``exprs`` with each large-denominator exponent as an integer plus or minus a positive
    symbol, and the map back (empty, and ``exprs`` unchanged, when the degree is at most
    ``max_degree``). Logarithms of such powers are expanded (``log(A**s) = s log A``, ``A``
    positive), as ``simplify`` does for a number ``s`` but not for a symbol.

    One symbol per fractional part (``r`` and ``1 - r`` share one), named by its order, so the
    same expressions give the same symbols in any process.

    Example:
        >>> u = sp.Symbol("u", positive=True)
        >>> (held,), back = abstract([u ** sp.Rational(237, 100) - u ** sp.Rational(-63, 100)])
        >>> held
        -u**(_e0 - 1) + u**(_e0 + 2)
        >>> restore(held, back) == u ** sp.Rational(237, 100) - u ** sp.Rational(-63, 100)
        True
    """
    if degree(exprs) <= max_degree:
        return list(exprs), {}
    parts: set[sp.Rational] = set()
    for e in _exponents(exprs):
        r = e - sp.floor(e)
        parts.add(min(r, 1 - r))
    symbols = {
        part: sp.Dummy(f"e{i}", positive=True, integer=False)
        for i, part in enumerate(sorted(parts))
    }
    written: dict[sp.Rational, sp.Expr] = {}
    for e in _exponents(exprs):
        whole = sp.floor(e)
        r = e - whole
        if r in symbols:
            written[e] = whole + symbols[r]
        else:
            written[e] = whole + 1 - symbols[1 - r]

    def held(node: sp.Expr) -> sp.Expr:
        return sp.Pow(node.base, written[node.exp])

    def hoisted(expr: sp.Expr) -> sp.Expr:
        # log(A**s) as s*log(A) (A > 0): what simplify does with a number s, not with a symbol
        return expr.replace(
            lambda n: isinstance(n, sp.log) and n.has(*symbols.values()), sp.expand_log
        )

    out = [hoisted(expr.replace(lambda n: n.is_Pow and n.exp in written, held)) for expr in exprs]
    return out, {symbol: part for part, symbol in symbols.items()}


def restore(expr: sp.Expr, back: Restore) -> sp.Expr:
    """The numbers back in place of :func:`abstract`'s symbols (exactly: sympy evaluates the
    exponents again)."""
    if not back or expr is None:
        return expr
    return expr.xreplace(back)
