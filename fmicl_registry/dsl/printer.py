"""Print a sympy expression as torch source code.

A deliberately small printer of our own (the "equivalent" of sympy's ``TorchPrinter``): it knows
exactly the node types the DSL produces and refuses everything else, so the generated code can
only contain torch calls from the table below, the variable's name and float literals. Constant
sub-expressions are folded to float literals (``log(2)`` becomes ``0.6931471805599453``), which
keeps the code dtype-agnostic: Python floats take the dtype of the tensor they meet.
"""

from __future__ import annotations

import sympy as sp

from .functions import expm1, log1p, sigmoid, softplus

_FUNCTIONS: dict[type, str] = {
    sp.exp: "torch.exp",
    sp.log: "torch.log",
    sp.Abs: "torch.abs",
    sp.sinh: "torch.sinh",
    sp.cosh: "torch.cosh",
    sp.tanh: "torch.tanh",
    sp.atan: "torch.atan",
    sp.asinh: "torch.asinh",
    softplus: "_softplus",  # F.softplus with a float64-exact threshold, see below
    sigmoid: "torch.sigmoid",
    log1p: "torch.log1p",
    expm1: "ops.expm1",
}

# Python operator precedence, enough to decide where parentheses go.
_ADD, _MUL, _UNARY, _POW, _ATOM = 1, 2, 3, 4, 5


class UnprintableError(ValueError):
    """The expression uses something torch has no function for (e.g. Lambert W)."""


def print_torch(expr: sp.Expr, names: dict[sp.Symbol, str]) -> str:
    """Torch source for ``expr``; ``names`` maps each free symbol to its variable name.

    Example:
        >>> u = sp.Symbol("u", positive=True)
        >>> print_torch(u * sp.log(u) + sp.log(2), {u: "u"})
        'u * torch.log(u) + 0.6931471805599453'
    """
    return _print(expr, names)[0]


def print_body(expr: sp.Expr, names: dict[sp.Symbol, str], arg: str) -> str:
    """The printed expression of a function body; a constant still returns a tensor like the
    argument ``arg``.

    Example:
        >>> x = sp.Symbol("x")
        >>> print_body(sp.Integer(2), {x: "x"}, "x")
        'torch.full_like(x, 2.0)'
    """
    if expr.is_number:
        return f"torch.full_like({arg}, {print_torch(expr, names)})"
    return print_torch(expr, names)


def _float(value: sp.Expr) -> str:
    number = complex(value.evalf(30))
    if number.imag != 0:
        raise UnprintableError(f"constant {value} is not real")
    text = repr(float(number.real))
    if text in {"inf", "-inf", "nan"}:
        return f"float('{text}')"
    return text


def _wrap(text_prec: tuple[str, int], minimum: int) -> str:
    text, prec = text_prec
    return f"({text})" if prec < minimum else text


def _print(expr: sp.Expr, names: dict[sp.Symbol, str]) -> tuple[str, int]:
    if expr.is_Symbol:
        if expr not in names:
            raise UnprintableError(f"free symbol {expr} has no variable")
        return names[expr], _ATOM
    if expr.is_number:
        text = _float(expr)
        return text, (_UNARY if text.startswith("-") else _ATOM)
    if expr.is_Add:
        terms = sorted(expr.args, key=lambda a: (a.is_number, sp.default_sort_key(a)))
        out = _wrap(_print(terms[0], names), _ADD)
        for term in terms[1:]:
            coeff = term.as_coeff_Mul()[0]
            if coeff.is_number and coeff < 0:
                out += " - " + _wrap(_print(-term, names), _MUL)
            else:
                out += " + " + _wrap(_print(term, names), _ADD + 1)
        return out, _ADD
    if expr.is_Mul:
        coeff, rest = expr.as_coeff_Mul()
        if coeff == -1:
            return "-" + _wrap(_print(rest, names), _POW), _UNARY
        numer, denom = [], []
        for factor in sp.Mul.make_args(expr):
            base, exponent = factor.as_base_exp()
            if exponent == -1 and not factor.is_number:
                denom.append(base)
            else:
                # b**-n with n != 1 stays a factor, printed (1/b)**n below: written a / b**n, the
                # gradient of b**n overflows (24/(exp(x) + 1)**4 at x = 40) where (1/b)**n
                # underflows gracefully.
                numer.append(factor)
        top = " * ".join(_wrap(_print(f, names), _MUL) for f in numer) if numer else "1.0"
        if not denom:
            return top, _MUL
        if len(denom) == 1:
            bottom = _wrap(_print(denom[0], names), _POW)
        else:
            bottom = "(" + " * ".join(_wrap(_print(f, names), _MUL) for f in denom) + ")"
        return f"{top} / {bottom}", _MUL
    if expr.is_Pow:
        base, exponent = expr.args
        if exponent == sp.Rational(1, 2):
            return f"torch.sqrt({_print(base, names)[0]})", _ATOM
        if exponent == sp.Rational(-1, 2):
            return f"torch.rsqrt({_print(base, names)[0]})", _ATOM
        if exponent.is_negative and exponent.is_number:
            # (1/b)**n, not b**-n: the gradient then underflows instead of overflowing.
            inverse = f"torch.reciprocal({_print(base, names)[0]})"
            if exponent == -1:
                return inverse, _ATOM
            if exponent.is_Integer:
                return f"{inverse} ** {int(-exponent)}", _POW
            return f"{inverse} ** {_float(-exponent)}", _POW
        if exponent.is_Integer:
            return f"{_wrap(_print(base, names), _ATOM)} ** {int(exponent)}", _POW
        if exponent.is_number:
            return f"{_wrap(_print(base, names), _ATOM)} ** {_float(exponent)}", _POW
        return f"torch.pow({_print(base, names)[0]}, {_print(exponent, names)[0]})", _ATOM
    function = _FUNCTIONS.get(type(expr))
    if function is None:
        raise UnprintableError(f"torch has no function for {type(expr).__name__}")
    inner = ", ".join(_print(a, names)[0] for a in expr.args)
    if function == "_softplus":
        # The default threshold (20) returns x itself above 20: exact in float32, 1e-10 off in
        # float64. Above 40, x is exact in float64 too.
        return f"F.softplus({inner}, beta=1.0, threshold=40.0)", _ATOM
    return f"{function}({inner})", _ATOM
