"""Print a derivation as a torch module and build that module from the printed text.

The code is a small Python module printed by ``printer.print_torch`` (only torch calls, float
literals and fixed variable names can appear in it) and executed from that text, in memory
(:func:`module_from_source`): no file is ever imported or executed.

Besides ``f``, ``f'``, ``f''``, ``f*`` and the two composed terms, the module holds each term's
slope (``positive_slope``, ``negative_slope``: ``d term / d log_r``) and one function per
candidate form of each (``positive_term_form0``, ...), so that a range-specialised term
(``stabilize.specialize``, ``Divergence.terms_on``) is made of functions that are already in
the module: nothing is generated after the module itself.
"""

from __future__ import annotations

import linecache
import re
import types
from dataclasses import dataclass

import sympy as sp

from .._version import __version__
from .conjugate import Conjugate, T
from .derive import Derivation
from .parse import U
from .printer import print_torch
from .stabilize import LOG_R, Piece, StableTerm, midpoint, stable


@dataclass(frozen=True, eq=False)
class Compiled:
    """Everything derived from one generator: exact forms, stable pieces, code and module."""

    derivation: Derivation
    conjugate: Conjugate
    positive: StableTerm
    negative: StableTerm
    source: str
    module: types.ModuleType
    from_cache: bool


def _body(expr: sp.Expr, names: dict[sp.Symbol, str], arg: str) -> str:
    """The printed expression; a constant still returns a tensor like the argument."""
    if expr.is_number:
        return f"torch.full_like({arg}, {print_torch(expr, names)})"
    return print_torch(expr, names)


def _function(name: str, arg: str, expr: sp.Expr, symbol: sp.Symbol, doc: str) -> str:
    body = _body(stable(expr), {symbol: arg}, arg)
    return f'def {name}({arg}):\n    """{doc}"""\n    return {body}\n'


def _conjugate_function(conjugate: Conjugate, domain: sp.Interval) -> str:
    """``f*(t)`` from its closed form inside the domain and its exact values outside it:
    ``+inf`` above (the sup over u of ``u t - f(u)`` is unbounded), ``-f(0+)`` below (the sup is
    approached as ``u -> 0``), the left limit at a finite upper end. NaN stays NaN."""
    assert conjugate.expr is not None
    low, high = domain.inf, domain.sup
    lines = [
        "def f_star(t):",
        '    """Closed-form conjugate f*(t), exact outside the domain too."""',
    ]
    outside = []
    if low.is_finite and conjugate.below is not None:
        outside.append(f"(t <= {print_torch(low, {})})")
    if high.is_finite:
        outside.append(f"(t >= {print_torch(high, {})})")
    if not outside:
        body = _body(stable(conjugate.expr), {T: "t"}, "t")
        return "\n".join([*lines, f"    return {body}"]) + "\n"
    if low.is_finite and high.is_finite:
        middle = (low + high) / 2
    else:
        middle = high - 1 if high.is_finite else low + 1
    lines.append(f"    outside = {' | '.join(outside)}")
    lines.append(f"    inside = torch.where(outside, {print_torch(middle, {})}, t)")
    lines.append(f"    y = {print_torch(stable(conjugate.expr), {T: 'inside'})}")
    if high.is_finite:
        top = "float('inf')" if conjugate.top is None else print_torch(conjugate.top, {})
        lines.append(f"    y = torch.where(t > {print_torch(high, {})}, float('inf'), y)")
        lines.append(f"    y = torch.where(t == {print_torch(high, {})}, {top}, y)")
    if low.is_finite and conjugate.below is not None:
        below = print_torch(conjugate.below, {})
        lines.append(f"    y = torch.where(t <= {print_torch(low, {})}, {below}, y)")
    lines.append("    return y")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    """Text safe inside a ``#`` comment: one line of plain characters (a cached label or form
    could otherwise smuggle a newline, and code, into the module)."""
    return re.sub(r"[^A-Za-z0-9 _+\-*/().,^=<>]", "?", text)[:200]


def _condition(piece: Piece) -> str:
    parts = []
    if piece.low != float("-inf"):
        parts.append(f"(log_r >= {piece.low!r})")
    if piece.high != float("inf"):
        parts.append(f"(log_r < {piece.high!r})")
    return " & ".join(parts)


def _piecewise_function(name: str, term: StableTerm, doc: str) -> str:
    lines = [f"def {name}(log_r):", f'    """{doc}"""']
    forms: dict[sp.Expr, list[Piece]] = {}
    for piece in term.pieces:
        forms.setdefault(piece.expr, []).append(piece)
    if len(forms) == 1:
        lines.append(f"    return {_body(term.pieces[0].expr, {LOG_R: 'log_r'}, 'log_r')}")
        return "\n".join(lines) + "\n"
    # Each form is computed once, on the points of its own regions; other points are moved to a
    # safe point inside a region of that form, so an overflow elsewhere can poison neither the
    # value nor the gradient (torch.where passes 0 * inf = nan gradients otherwise).
    last = len(forms) - 1
    for i, (expr, pieces) in enumerate(forms.items()):
        where = ", ".join(f"[{p.low}, {p.high})" for p in pieces)
        lines.append(f"    # {_comment(pieces[0].label)} on {where}")
        safe = midpoint(pieces[0])
        if i < last:
            regions = " | ".join(
                f"({_condition(p)})" if len(pieces) > 1 else _condition(p) for p in pieces
            )
            lines.append(f"    in{i} = {regions}")
            lines.append(f"    x{i} = torch.where(in{i}, log_r, {safe!r})")
        else:  # the rest of the line, NaN included: NaN in, NaN out
            others = " | ".join(f"in{j}" for j in range(last))
            lines.append(f"    x{i} = torch.where({others}, {safe!r}, log_r)")
        lines.append(f"    y{i} = {print_torch(expr, {LOG_R: f'x{i}'})}")
    out = f"y{len(forms) - 1}"
    for i in reversed(range(len(forms) - 1)):
        out = f"torch.where(in{i}, y{i}, {out})"
    lines.append(f"    return {out}")
    return "\n".join(lines) + "\n"


#: The names of the four composed-term functions in a compiled module, and their docstrings.
TERM_FUNCTIONS = {
    "positive_term": "f'(exp(log_r))",
    "negative_term": "f*(f'(exp(log_r)))",
    "positive_slope": "d/dlog_r of f'(exp(log_r)) = u f''(u)",
    "negative_slope": "d/dlog_r of f*(f'(exp(log_r))) = u^2 f''(u)",
}


def term_functions(positive: StableTerm, negative: StableTerm) -> dict[str, StableTerm]:
    """The four composed terms of a module by function name (a missing slope is left out)."""
    out = {"positive_term": positive, "negative_term": negative}
    for name, term in (("positive_slope", positive), ("negative_slope", negative)):
        if term.slope is not None:
            out[name] = term.slope
    return out


def form_function(name: str, index: int) -> str:
    """The module function of candidate form ``index`` of term ``name``."""
    return f"{name}_form{index}"


def _form_functions(name: str, term: StableTerm) -> list[str]:
    parts = []
    for i, (label, expr) in enumerate(term.forms):
        doc = f"{TERM_FUNCTIONS[name]}, form {i}."
        body = _body(expr, {LOG_R: "log_r"}, "log_r")
        parts += [
            f'def {form_function(name, i)}(log_r):\n    """{doc}"""\n'
            f"    # {_comment(label)}\n    return {body}\n",
            "",
        ]
    return parts


def render_module(
    derivation: Derivation,
    conjugate: Conjugate,
    positive: StableTerm,
    negative: StableTerm,
) -> str:
    """The source of the compiled module."""
    parts = [
        f"# Generated by fmicl-registry {__version__} from the derivation of",
        f"# f(u) = {_comment(str(derivation.generator))}",
        "# Printed from the stored forms and executed from this text; no file is ever imported.",
        "import torch",
        "import torch.nn.functional as F",
        "",
        "from fmicl_registry.dsl import ops",
        "",
        "",
        _function("f", "u", derivation.generator, U, "The generator f(u), u > 0."),
        "",
        _function("f_prime", "u", derivation.derivative, U, "f'(u)."),
        "",
        _function("f_second", "u", derivation.second_derivative, U, "f''(u)."),
        "",
    ]
    if conjugate.compilable and conjugate.expr is not None:
        parts += [_conjugate_function(conjugate, derivation.domain), ""]
    terms = term_functions(positive, negative)
    for name, term in terms.items():
        parts += [_piecewise_function(name, term, f"{TERM_FUNCTIONS[name]}, stable form."), ""]
    for name, term in terms.items():
        parts += _form_functions(name, term)
    return "\n".join(parts).rstrip("\n") + "\n"


def module_from_source(source: str, key: str) -> types.ModuleType:
    """Execute ``source`` (the printer's output, never a file's contents) into a new module.

    The module has no ``__file__`` and is not put in ``sys.modules``; its code is registered
    with ``linecache`` under a pseudo file name, so tracebacks and ``inspect`` show its lines.
    """
    filename = f"<fmicl-registry compiled divergence {key}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(f"fmicl_registry._compiled_{key}")
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def build(
    d: Derivation, c: Conjugate, pos: StableTerm, neg: StableTerm, key: str, from_cache: bool
) -> Compiled:
    """Print the module of a derivation and execute it (see :func:`module_from_source`)."""
    source = render_module(d, c, pos, neg)
    return Compiled(d, c, pos, neg, source, module_from_source(source, key), from_cache)
