"""Evaluate a sympy expression numerically by walking its tree (no code generation).

Two back ends over one small set of node types: ``mpmath`` (arbitrary precision, the reference
used to check compiled code) and ``torch`` (used while choosing stable forms). Anything outside
the node table raises ``NotImplementedError``, so the evaluator never runs arbitrary code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mpmath
import sympy as sp
import torch

from . import ops
from .functions import expm1, log1p, sigmoid, softplus

_MP_FUNCS: dict[type, Callable[[Any], Any]] = {
    sp.exp: mpmath.exp,
    sp.log: mpmath.log,
    sp.Abs: abs,
    sp.sign: mpmath.sign,
    sp.sinh: mpmath.sinh,
    sp.cosh: mpmath.cosh,
    sp.tanh: mpmath.tanh,
    sp.atan: mpmath.atan,
    sp.asinh: mpmath.asinh,
    sp.LambertW: lambda z: _real(mpmath.lambertw(z)),
    sp.sin: mpmath.sin,
    sp.cos: mpmath.cos,
    sp.tan: mpmath.tan,
    sp.asin: mpmath.asin,
    sp.acos: mpmath.acos,
    sp.acosh: mpmath.acosh,
    sp.atanh: mpmath.atanh,
    softplus: lambda z: mpmath.log1p(mpmath.exp(z)),
    sigmoid: lambda z: 1 / (1 + mpmath.exp(-z)),
    log1p: mpmath.log1p,
    expm1: mpmath.expm1,
}

_TORCH_FUNCS: dict[type, Callable[[torch.Tensor], torch.Tensor]] = {
    sp.exp: torch.exp,
    sp.log: torch.log,
    sp.Abs: torch.abs,
    sp.sinh: torch.sinh,
    sp.cosh: torch.cosh,
    sp.tanh: torch.tanh,
    sp.atan: torch.atan,
    sp.asinh: torch.asinh,
    softplus: lambda z: torch.nn.functional.softplus(z, beta=1.0, threshold=40.0),
    sigmoid: torch.sigmoid,
    log1p: torch.log1p,
    expm1: ops.expm1,
}


def _real(value: Any) -> Any:
    if isinstance(value, mpmath.mpc) and value.imag == 0:
        return value.real
    return value


#: Magnitudes saturate at 2**MAX_BITS, and exp-like functions of an argument beyond
#: EXP_ARGUMENT_LIMIT. mpmath keeps the exponent of a number as an integer, so a value such as
#: ``cosh(e^80)`` (about 2**(8e34)) costs no more than a small one, and ``log(cosh(e^80)) -
#: e^80`` comes out right; but an exponential of an argument that is itself huge
#: (``exp(exp(1e8))``) needs the argument to as many bits as its magnitude, and would never
#: return. Hence the argument limit: 2**128 is far above any argument a composed term meets on
#: ``log_r`` in [-80, 80] short of a double exponential.
MAX_BITS = 2**130
EXP_ARGUMENT_LIMIT = mpmath.mpf(2) ** 128
HUGE = mpmath.mpf(2) ** MAX_BITS


#: How many times a value was saturated at ``HUGE`` (reset by callers that need to know: a sum
#: of saturated values, ``HUGE - HUGE = 0``, is not the exact result).
saturations = [0]


def _capped(value: Any) -> Any:
    big = (
        isinstance(value, mpmath.mpf | mpmath.mpc)
        and mpmath.isfinite(value)
        and value != 0
        and mpmath.mag(value) > MAX_BITS
    )
    if not big:
        return value
    saturations[0] += 1
    if isinstance(value, mpmath.mpc):
        return value / abs(value) * HUGE
    return HUGE if value > 0 else -HUGE


def _const(value: Any) -> Callable[[Any], Any]:
    return lambda x: value


# exp-like functions far out: (value for x > EXP_ARGUMENT_LIMIT, value for x < -that).
_EXP_LIKE: dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    sp.exp: (_const(HUGE), _const(mpmath.mpf(0))),
    sp.sinh: (_const(HUGE), _const(-HUGE)),
    sp.cosh: (_const(HUGE), _const(HUGE)),
    softplus: (lambda x: x, _const(mpmath.mpf(0))),
    sigmoid: (_const(mpmath.mpf(1)), _const(mpmath.mpf(0))),
    expm1: (_const(HUGE), _const(mpmath.mpf(-1))),
}


def mp_eval(expr: sp.Expr, env: Mapping[sp.Symbol, Any]) -> Any:
    """Evaluate ``expr`` with mpmath at the current ``mpmath.mp.dps``; complex results are kept.

    Magnitudes saturate at ``HUGE = 2**MAX_BITS``: a generator that grows like ``exp(exp(u))``
    is evaluated, not computed to 10**43 digits.
    """
    if expr.is_Symbol:
        return env[expr]
    if expr is sp.I:
        return mpmath.mpc(0, 1)
    if expr.is_Number or expr.is_NumberSymbol:
        if expr is sp.oo:
            return mpmath.inf
        if expr is sp.S.NegativeInfinity:
            return -mpmath.inf
        if expr.is_Rational:
            return mpmath.mpf(int(expr.p)) / int(expr.q)
        return mpmath.mpf(sp.Float(expr, mpmath.mp.dps + 5))
    args = [mp_eval(a, env) for a in expr.args]
    if expr.is_Add:
        return _capped(mpmath.fsum(args))
    if expr.is_Mul:
        return _capped(mpmath.fprod(args))
    if expr.is_Pow:
        base, exponent = args
        if base != 0 and mpmath.isfinite(base) and mpmath.isfinite(exponent):
            real_exponent = exponent.real if isinstance(exponent, mpmath.mpc) else exponent
            if abs(real_exponent) * abs(mpmath.log(abs(base), 2)) > MAX_BITS:
                grows = (abs(base) > 1) == (real_exponent > 0)
                saturations[0] += 1
                return HUGE if grows else mpmath.mpf(0)
        return _capped(mpmath.power(base, exponent))
    kind = type(expr)
    func = _MP_FUNCS.get(kind)
    if func is None:
        raise NotImplementedError(f"cannot evaluate {kind.__name__} numerically")
    if kind in _EXP_LIKE:
        x = args[0].real if isinstance(args[0], mpmath.mpc) else args[0]
        if mpmath.isfinite(x) and abs(x) > EXP_ARGUMENT_LIMIT:
            high, low = _EXP_LIKE[kind]
            saturations[0] += 1
            return (high if x > 0 else low)(x)
    return _capped(func(*args))


def torch_eval(expr: sp.Expr, env: Mapping[sp.Symbol, torch.Tensor]) -> torch.Tensor:
    """Evaluate ``expr`` with torch ops on the tensors in ``env`` (differentiable)."""
    if expr.is_Symbol:
        return env[expr]
    like = next(iter(env.values()))
    if expr.is_number:
        return torch.full_like(like, float(expr.evalf(30)))
    args = [torch_eval(a, env) for a in expr.args]
    if expr.is_Add:
        out = args[0]
        for a in args[1:]:
            out = out + a
        return out
    if expr.is_Mul:
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if expr.is_Pow:
        exponent = expr.args[1]
        if exponent.is_number:
            if exponent.is_negative:
                # Power of the reciprocal: its gradient -n r**(n+1) underflows gracefully
                # where base**(-n-1) would overflow first.
                inverse = torch.reciprocal(args[0])
                return inverse if exponent == -1 else _power(inverse, -exponent)
            return _power(args[0], exponent)
        return torch.pow(args[0], args[1])
    func = _TORCH_FUNCS.get(type(expr))
    if func is None:
        raise NotImplementedError(f"torch has no {type(expr).__name__}")
    return func(*args)


def _power(base: torch.Tensor, exponent: sp.Expr) -> torch.Tensor:
    if exponent == sp.Rational(1, 2):
        return torch.sqrt(base)
    if exponent.is_Integer:
        return base ** int(exponent)
    return base ** float(exponent)


def torch_supported(expr: sp.Expr) -> bool:
    """Whether every node of ``expr`` has a torch counterpart (Lambert W, for one, has none)."""
    for node in sp.preorder_traversal(expr):
        if node.is_Atom or node.is_Add or node.is_Mul or node.is_Pow:
            if node.is_Atom and not (node.is_Symbol or node.is_number):
                return False
            continue
        if type(node) not in _TORCH_FUNCS:
            return False
    return not expr.has(sp.zoo, sp.nan, sp.I)
