"""Turn a derivation into torch code, and cache both on disk.

The code is a small Python module printed by ``printer.print_torch`` (only torch calls, float
literals and fixed variable names can appear in it), written under the cache directory and
imported from there. The derived sympy forms are stored beside it as ``srepr`` text and read back
by ``serialize.loads`` (a whitelist, no ``eval``). Both are keyed by the library version and the
exact generator, so defining a known divergence again skips sympy entirely.

Besides ``f``, ``f'``, ``f''``, ``f*`` and the two composed terms, the module holds each term's
slope (``positive_slope``, ``negative_slope``: ``d term / d log_r``) and one function per
candidate form of each (``positive_term_form0``, ...), so that a range-specialised term
(``stabilize.specialize``, ``Divergence.terms_on``) is made of functions that are already in
the module: nothing is generated, written or imported after the module itself, and the module
is only imported when it is byte-identical to what the printer writes for the stored forms.

Cache directory: ``$FMICL_CACHE_DIR``, else ``$XDG_CACHE_HOME/fmicl-registry``, else
``~/.cache/fmicl-registry``; set ``FMICL_CACHE_DIR=off`` to keep nothing on disk.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import re
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from .._version import __version__
from . import serialize
from .conjugate import Conjugate, T, closed_form
from .derive import Derivation, derive, simplified
from .parse import U
from .printer import print_torch
from .stabilize import LOG_R, Piece, StableTerm, choose, midpoint, stable

CACHE_FORMAT = 2


@dataclass
class Compiled:
    """Everything derived from one generator: exact forms, stable pieces, code and module."""

    derivation: Derivation
    conjugate: Conjugate
    positive: StableTerm
    negative: StableTerm
    source: str
    module: types.ModuleType
    from_cache: bool
    #: Range-specialised terms already built, by range (``Divergence.terms_on``).
    specialized: dict[Any, Any] = dataclasses.field(default_factory=dict, repr=False)


def cache_dir() -> Path | None:
    """Where compiled divergences are kept, or None when caching is off."""
    configured = os.environ.get("FMICL_CACHE_DIR")
    if configured and configured.lower() in {"off", "0", "none", "false"}:
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fmicl-registry"


@functools.cache
def _dsl_fingerprint() -> str:
    """Hash of the DSL's own source: a changed derivation or printer invalidates old entries."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(generator: sp.Expr, normalize: bool) -> str:
    """Hash of everything the compiled result depends on."""
    parts = [__version__, CACHE_FORMAT, _dsl_fingerprint(), serialize.dumps(generator), normalize]
    text = json.dumps(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------- code printing
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
        "# Do not edit: the cache regenerates it when it differs from what the printer writes.",
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


def _import(path: Path, key: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"fmicl_registry._compiled_{key}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load compiled divergence {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------- caching
def _pieces_to_json(term: StableTerm) -> dict[str, Any]:
    return {
        "exact": serialize.dumps(term.exact),
        "max_rel_error": term.max_rel_error,
        "pieces": [[p.low, p.high, serialize.dumps(p.expr), p.label] for p in term.pieces],
        "forms": [[label, serialize.dumps(expr)] for label, expr in term.forms],
        "slope": None if term.slope is None else _pieces_to_json(term.slope),
    }


def _pieces_from_json(data: dict[str, Any]) -> StableTerm:
    pieces = tuple(
        Piece(float(lo), float(hi), serialize.loads(e), str(label))
        for lo, hi, e, label in data["pieces"]
    )
    forms = tuple((str(label), serialize.loads(e)) for label, e in data["forms"])
    slope = None if data["slope"] is None else _pieces_from_json(data["slope"])
    return StableTerm(
        serialize.loads(data["exact"]), pieces, float(data["max_rel_error"]), forms, slope
    )


def _to_json(
    generator: sp.Expr, d: Derivation, c: Conjugate, pos: StableTerm, neg: StableTerm
) -> dict[str, Any]:
    return {
        "version": __version__,
        "format": CACHE_FORMAT,
        "generator": serialize.dumps(d.generator),
        "derivative": serialize.dumps(d.derivative),
        "second_derivative": serialize.dumps(d.second_derivative),
        "shift": serialize.dumps(d.shift),
        "domain": serialize.dumps(d.domain),
        "convexity": d.convexity,
        "input": serialize.dumps(generator),
        "conjugate": None if c.expr is None else serialize.dumps(c.expr),
        "conjugate_compilable": c.compilable,
        "conjugate_note": c.note,
        "conjugate_below": None if c.below is None else serialize.dumps(c.below),
        "conjugate_top": None if c.top is None else serialize.dumps(c.top),
        "positive": _pieces_to_json(pos),
        "negative": _pieces_to_json(neg),
    }


def _from_json(data: dict[str, Any]) -> tuple[Derivation, Conjugate, StableTerm, StableTerm]:
    d = Derivation(
        serialize.loads(data["generator"]),
        serialize.loads(data["derivative"]),
        serialize.loads(data["second_derivative"]),
        serialize.loads(data["shift"]),
        serialize.loads(data["domain"]),
        str(data["convexity"]),
    )
    expr = data["conjugate"]
    below, top = data["conjugate_below"], data["conjugate_top"]
    c = Conjugate(
        None if expr is None else serialize.loads(expr),
        bool(data["conjugate_compilable"]),
        str(data["conjugate_note"]),
        None if below is None else serialize.loads(below),
        None if top is None else serialize.loads(top),
    )
    return d, c, _pieces_from_json(data["positive"]), _pieces_from_json(data["negative"])


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _load_cached(folder: Path, key: str, generator: sp.Expr) -> Compiled | None:
    meta, code = folder / f"{key}.json", folder / f"{key}.py"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        if data.get("version") != __version__ or data.get("format") != CACHE_FORMAT:
            return None
        if serialize.loads(data["input"]) != generator:
            return None  # filed under another generator's key
        d, c, pos, neg = _from_json(data)
        source = code.read_text(encoding="utf-8")
        if source != render_module(d, c, pos, neg):
            return None  # edited or truncated: regenerate rather than run it
        return Compiled(d, c, pos, neg, source, _import(code, key), True)
    except Exception:  # anything wrong with a cache entry: derive again and overwrite it
        return None


def compile_generator(generator: sp.Expr, *, normalize: bool, text: str | None = None) -> Compiled:
    """Derive, check and compile ``generator`` (a sympy expression in ``u``), using the cache."""
    folder = cache_dir()
    key = cache_key(generator, normalize)
    if folder is not None:
        cached = _load_cached(folder / __version__, key, generator)
        if cached is not None:
            return cached
    d = derive(generator, normalize=normalize, text=text)
    c = closed_form(d.generator, d.derivative, d.domain)
    pos = dataclasses.replace(
        choose(d.derivative),
        slope=choose(simplified(U * d.second_derivative), gradient=False),
    )
    neg = dataclasses.replace(
        choose(simplified(sp.expand_log(U * d.derivative - d.generator, force=True))),
        slope=choose(simplified(U**2 * d.second_derivative), gradient=False),
    )
    source = render_module(d, c, pos, neg)
    target = folder / __version__ if folder is not None else None
    if target is not None:
        try:
            _write_atomic(target / f"{key}.py", source)
            _write_atomic(
                target / f"{key}.json", json.dumps(_to_json(generator, d, c, pos, neg), indent=1)
            )
            return Compiled(d, c, pos, neg, source, _import(target / f"{key}.py", key), False)
        except OSError:
            pass  # read-only or full disk: compile into a private temporary folder instead
    with tempfile.TemporaryDirectory(prefix="fmicl-") as tmp:
        path = Path(tmp) / f"{key}.py"
        path.write_text(source, encoding="utf-8")
        module = _import(path, key)
    return Compiled(d, c, pos, neg, source, module, False)
