"""Store sympy expressions as text and read them back without ``eval``.

``dumps`` is sympy's ``srepr``. ``loads`` parses that text with ``ast`` and rebuilds the tree
from a whitelist of sympy classes, so a tampered cache file can at worst fail to load.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import sympy as sp

from .functions import expm1, log1p, sigmoid, softplus

_CLASSES: dict[str, Callable[..., Any]] = {
    "Add": lambda *a: sp.Add(*a),
    "Mul": lambda *a: sp.Mul(*a),
    "Pow": lambda b, e: sp.Pow(b, e),
    "Integer": sp.Integer,
    "Rational": sp.Rational,
    "Float": lambda text, precision=53: sp.Float(text, precision=precision),
    "Symbol": lambda name, **assumptions: sp.Symbol(name, **assumptions),
    "Interval": sp.Interval,
    "exp": sp.exp,
    "log": sp.log,
    "Abs": sp.Abs,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "atan": sp.atan,
    "asinh": sp.asinh,
    "LambertW": sp.LambertW,
    "softplus": softplus,
    "sigmoid": sigmoid,
    "log1p": log1p,
    "expm1": expm1,
}
_NAMES: dict[str, Any] = {
    "oo": sp.oo,
    "pi": sp.pi,
    "E": sp.E,
    "true": True,
    "false": False,
    "True": True,
    "False": False,
}
_SYMBOL_ASSUMPTIONS = {"positive", "real", "negative", "nonnegative"}


def dumps(expr: sp.Basic) -> str:
    """The exact text form of ``expr``."""
    return sp.srepr(expr)


#: What a stored expression may contain: the DSL's own symbols, modest numbers, bounded size.
SYMBOLS = {"u", "t", "log_r", "v"}
MAX_TEXT = 20_000
MAX_DIGITS = 40


def loads(text: str) -> Any:
    """Rebuild an expression written by ``dumps``; raises ``ValueError`` on anything else."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise ValueError("not a stored expression (not text, or too long)")
    try:
        tree = ast.parse(text, mode="eval")
        return _build(tree.body)
    except (SyntaxError, RecursionError, MemoryError) as err:
        raise ValueError(f"not a stored expression: {type(err).__name__}") from None


def _build(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str | bool):
        if isinstance(node.value, int | str) and len(str(node.value)) > MAX_DIGITS:
            raise ValueError("a stored number or name is too long")
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_build(node.operand)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CLASSES:
        args = [_build(a) for a in node.args]
        kwargs = {}
        for kw in node.keywords:
            if kw.arg not in _SYMBOL_ASSUMPTIONS | {"precision"}:
                raise ValueError(f"unexpected keyword {kw.arg!r} in a stored expression")
            kwargs[kw.arg] = _build(kw.value)
        name = node.func.id
        if name == "Symbol" and (not args or args[0] not in SYMBOLS):
            raise ValueError(f"unexpected symbol in a stored expression: {args[:1]!r}")
        if name == "Pow" and all(getattr(a, "is_number", False) for a in args):
            args = [args[0], args[1]]
            if abs(float(args[1])) > 64:
                raise ValueError("a stored constant power is too large")
        return _CLASSES[name](*args, **kwargs)
    raise ValueError(f"unexpected {type(node).__name__} in a stored expression")
