"""The disk cache of derivations: paths, keys, the JSON format, and loading with verification.

An entry is the derivation of one generator (exact forms, stable pieces, the conjugate) as
JSON, the sympy forms as ``srepr`` text read back by ``serialize.loads`` (a whitelist, no
``eval``). It is keyed by the library version and the exact generator, so defining a known
divergence again skips the derivation. No code is stored: the module is printed again from the
forms (``codegen``) and executed from that text.

The cache is outside the library's control, and so is anything else an entry comes from (the
catalog shipped with the package, a child process that derived it): an entry read back is
checked against the generator being defined (:func:`verify`), and one that is not its
derivation (tampered, stale, truncated, filed under another generator) is derived again.

Cache directory: ``$FMICL_CACHE_DIR``, else ``$XDG_CACHE_HOME/fmicl-registry``, else
``~/.cache/fmicl-registry``; set ``FMICL_CACHE_DIR=off`` to keep nothing on disk.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mpmath
import sympy as sp

from .._version import __version__
from . import serialize
from .codegen import Compiled, build
from .conjugate import Conjugate, T, fenchel_young_holds
from .derive import Derivation
from .evaluate import MAX_BITS, mp_eval, torch_supported
from .functions import expm1, sigmoid, softplus
from .parse import U
from .stabilize import LOG_R, Piece, StableTerm, midpoint

#: The version of the entry format (part of the key).
CACHE_FORMAT = 3
logger = logging.getLogger(__name__)


def cache_dir() -> Path | None:
    """Where compiled divergences are kept, or None when caching is off."""
    configured = os.environ.get("FMICL_CACHE_DIR")
    if configured and configured.lower() in {"off", "0", "none", "false"}:
        return None
    if configured:
        return Path(configured)
    from .._paths import user_cache_dir

    return user_cache_dir()


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


# ----------------------------------------------------------------------------------- the format
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
    generator: sp.Expr,
    normalize: bool,
    d: Derivation,
    c: Conjugate,
    pos: StableTerm,
    neg: StableTerm,
) -> dict[str, Any]:
    return {
        "version": __version__,
        "format": CACHE_FORMAT,
        "normalize": normalize,
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


def entry_json(
    generator: sp.Expr,
    normalize: bool,
    forms: tuple[Derivation, Conjugate, StableTerm, StableTerm],
) -> str:
    """The entry (JSON text) of the derivation ``forms`` of ``generator``."""
    return json.dumps(_to_json(generator, normalize, *forms), indent=1) + "\n"


def write_entry(path: Path, text: str) -> None:
    """Write an entry atomically (a reader sees the old file or the new one, never a part)."""
    _write_atomic(path, text)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------- verifying a stored entry
#: Points of ``log_r`` (dyadic, so exact in binary) at which a stored entry is checked; ``u``
#: is ``exp`` of them.
CHECK_POINTS = (-80.0, -30.5, -9.25, -2.125, -0.375, 0.4375, 1.625, 5.75, 19.5, 80.0)
#: Of the check points, at least this many must be comparable (finite, and no intermediate
#: beyond the evaluator's range) for ``f``, ``f'``, ``f''`` and each exact composed term.
MIN_COMPARED = 3
#: A stored value agrees with its reference within this relative error, at 40 digits or else
#: at 120 (where a cancellation in either expression can cost 40 digits).
_REL = mpmath.mpf(10) ** -20
_FLOOR = mpmath.mpf(10) ** -100  # absolute, at 120 digits: both sides are zero
_EXP_LIKE = (sp.exp, sp.Pow, sp.sinh, sp.cosh, expm1, softplus, sigmoid)

Env = Callable[[], dict[sp.Symbol, Any]]


class _Mismatch(Exception):
    """A stored entry disagrees with what the generator says."""


def _value(expr: sp.Expr, env: dict[sp.Symbol, Any]) -> Any:
    """``expr`` at ``env`` as a finite real mpmath number, or None (not finite, not real,
    beyond the evaluator's range, or not defined there)."""
    try:
        value = mp_eval(expr, env)
    except Exception:  # ZeroDivisionError, ValueError, ...: nothing to compare there
        return None
    if isinstance(value, mpmath.mpc):
        if abs(value.imag) > _REL * max(1, abs(value.real)):
            return None
        value = value.real
    if not mpmath.isfinite(value) or (value != 0 and mpmath.mag(value) > MAX_BITS - 8):
        return None
    return value


def _saturates(expr: sp.Expr, env: dict[sp.Symbol, Any]) -> bool:
    """Whether ``mp_eval`` saturates somewhere inside ``expr`` at ``env``: it caps magnitudes
    at ``2**MAX_BITS`` (and ``exp`` of a larger argument at 0 or that cap), so a value made
    from a capped one (``log(cosh(u))`` at ``u = 1e9``) says nothing about the expression."""
    for node in sp.preorder_traversal(expr):
        if node.is_Atom:
            continue
        try:
            value = mp_eval(node, env)
        except Exception:
            continue
        size = abs(value)
        if mpmath.isfinite(size) and size != 0 and mpmath.mag(size) > MAX_BITS - 8:
            return True
        if isinstance(node, _EXP_LIKE) and (size == 0 or value in (-1, 1)):
            return True  # exp, a power, sinh, cosh are never 0; expm1 never -1; sigmoid never 1
    return False


def _close(a: Any, b: Any, dps: int, tolerance: Any = _REL) -> bool:
    if a == b:
        return True
    scale = max(abs(a), abs(b))
    return bool(abs(a - b) <= tolerance * scale or (dps > 40 and abs(a - b) <= _FLOOR))


def _compare(
    stored: sp.Expr,
    stored_at: Env,
    reference: sp.Expr,
    reference_at: Env,
    tolerance: float | None = None,
) -> bool | None:
    """Whether ``stored`` equals ``reference`` (each at its point, the points made at the
    current precision): within 1e-20 relative at 40 digits, else at 120 or 360, else (an
    approximation, such as a series form on its own region) within ``tolerance`` when one is
    given. None when there is nothing to compare: the reference is not finite and real, does
    not settle between 120 and 360 digits, or either side saturates the evaluator. A stored
    side that is not finite where the reference is, is a mismatch."""
    wants = []
    for dps in (40, 120, 360):
        with mpmath.workdps(dps):
            want = _value(reference, reference_at())
            if want is None:
                return None
            got = _value(stored, stored_at())
            if got is not None and (
                _close(got, want, dps)
                or (tolerance is not None and _close(got, want, dps, tolerance))
            ):
                return True
            wants.append(want)
    with mpmath.workdps(360):
        if not _close(wants[-2], wants[-1], 120):
            # the reference itself is not resolved here: u (1 - tanh(u - 1)**2) at u = e^80
            # cancels 10**34 digits; the stored form may well be the accurate one
            return None
    with mpmath.workdps(40):
        if _saturates(stored, stored_at()) or _saturates(reference, reference_at()):
            return None
    return False


def _at_u(x: float) -> Env:
    """``{u: e^x}``, made when called (at the precision of that moment)."""
    return lambda: {U: mpmath.exp(x)}


def _at_log_r(x: float) -> Env:
    return lambda: {LOG_R: mpmath.mpf(x)}


def _nowhere() -> dict[sp.Symbol, Any]:
    return {}


def _check_symbols(expr: Any, allowed: set[sp.Symbol], what: str) -> sp.Expr:
    if not isinstance(expr, sp.Expr) or not expr.free_symbols <= allowed:
        raise _Mismatch(f"{what} is not an expression in {sorted(map(str, allowed))}")
    return expr


def _check_function(
    stored: sp.Expr, stored_at: Callable[[float], Env], reference: sp.Expr, what: str
) -> None:
    """``stored`` equals ``reference`` (an expression in ``u``) at the check points ``u = e^x``
    (``stored_at(x)`` says where ``stored`` is evaluated), compared at enough of them."""
    compared = 0
    for x in CHECK_POINTS:
        found = _compare(stored, stored_at(x), reference, _at_u(x))
        if found is False:
            raise _Mismatch(f"{what} is not the generator's at log u = {x}")
        compared += found is True
    if compared < MIN_COMPARED:
        raise _Mismatch(f"{what} can be compared at {compared} points only")


def _check_term(term: StableTerm, reference: sp.Expr, what: str, has_slope: bool) -> None:
    """A composed term: its exact form equals ``reference`` (an expression in ``u`` made from
    the generator itself), its pieces cover the line in order, each piece equals the exact
    form on its own region (at its middle and at the check points inside it) and is one of the
    candidate forms, and every candidate form is an expression in ``log_r``.

    A piece may be an approximation (a series form where it is accurate): it is held to
    ``max(1e-9, 2 * max_rel_error)``, the float32 accuracy claimed for the term, when it is
    not exact. The other candidate forms are not compared: they are only used where
    ``stabilize.specialize`` measures them against the (checked) exact form.
    """
    exact = _check_symbols(term.exact, {LOG_R}, f"{what}: exact form")
    _check_function(exact, _at_log_r, reference, f"{what}: the exact form")
    if not term.pieces or term.pieces[0].low != -math.inf or term.pieces[-1].high != math.inf:
        raise _Mismatch(f"{what}: the pieces do not cover the line")
    for before, after in itertools.pairwise(term.pieces):
        if not before.low < before.high == after.low < after.high:
            raise _Mismatch(f"{what}: the pieces are not contiguous")
    for _, form in term.forms:
        _check_symbols(form, {LOG_R}, f"{what}: form")
    forms = {expr for _, expr in term.forms}
    if forms and any(piece.expr not in forms for piece in term.pieces):
        raise _Mismatch(f"{what}: a piece is none of the candidate forms")
    claimed = float(term.max_rel_error)
    if not claimed >= 0:  # NaN included
        raise _Mismatch(f"{what}: the claimed accuracy is not an error")
    tolerance = max(1e-9, 2 * claimed)
    for piece in term.pieces:
        form = _check_symbols(piece.expr, {LOG_R}, f"{what}: piece")
        inside = [x for x in CHECK_POINTS if piece.low <= x < piece.high]
        for x in (midpoint(piece), *inside):
            if _compare(form, _at_log_r(x), exact, _at_log_r(x), tolerance) is False:
                raise _Mismatch(f"{what}: piece {piece.label!r} is wrong at {x}")
    if (term.slope is not None) != has_slope:
        raise _Mismatch(f"{what}: {'no' if has_slope else 'unexpected'} slope")


def _number(value: Any, what: str) -> sp.Expr:
    if not isinstance(value, sp.Expr) or not value.is_number:
        raise _Mismatch(f"{what} is not a number")
    return value


def verify(
    generator: sp.Expr,
    normalize: bool,
    d: Derivation,
    c: Conjugate,
    pos: StableTerm,
    neg: StableTerm,
) -> str | None:
    """Why a stored derivation is not the derivation of ``generator``, or None when it is.

    ``generator`` is the trusted one (parsed from the user's text); everything else was read
    back from outside (the disk cache, the shipped catalog, a child process). Checked with
    mpmath at 40 digits (120 where that is not enough), at the points ``u = e^x`` of
    :data:`CHECK_POINTS` (``x`` in [-80, 80]) where the values are within the evaluator's
    range: ``f`` is the generator (less ``f(1)`` under ``normalize``, else ``f(1) = 0``),
    ``f'`` and ``f''`` are its derivatives (sympy's ``diff`` of the generator), the exact
    composed terms and slopes are ``f'(e^x)``, ``e^x f'(e^x) - f(e^x)``, ``u f''(u)`` and
    ``u^2 f''(u)``; every piece equals its exact term on its region; ``f'`` stays in the
    conjugate domain; the closed-form conjugate meets the Fenchel-Young equality, and its
    values below and at the end of the domain agree with ``-f(0+)`` and its left limit. Not
    re-proved: convexity, the tightness of the domain's ends, and the float32 errors measured
    at definition (a claimed error only loosens the check of an approximate piece).
    """
    try:
        _verify(generator, normalize, d, c, pos, neg)
    except _Mismatch as err:
        return str(err)
    return None


def _verify(
    generator: sp.Expr,
    normalize: bool,
    d: Derivation,
    c: Conjugate,
    pos: StableTerm,
    neg: StableTerm,
) -> None:
    first = sp.diff(generator, U)
    second = sp.diff(first, U)
    at_one = generator.subs(U, 1)

    # the generator and its derivatives
    shift = _number(d.shift, "the shift")
    if normalize:
        if _compare(shift, _nowhere, at_one, _nowhere) is not True:
            raise _Mismatch("the shift is not f(1)")
        f = generator - at_one
    else:
        with mpmath.workdps(50):
            value = _value(at_one, {})
        if shift != 0 or value is None or abs(value) >= mpmath.mpf(10) ** -40:  # as derive
            raise _Mismatch("f(1) != 0 without normalize")
        f = generator
    stored = (
        ("f", d.generator, f),
        ("f'", d.derivative, first),
        ("f''", d.second_derivative, second),
    )
    for name, expr, reference in stored:
        _check_function(_check_symbols(expr, {U}, name), _at_u, reference, name)

    # the composed terms and their slopes
    _check_term(pos, first, "positive term", True)
    _check_term(neg, U * first - f, "negative term", True)
    assert pos.slope is not None and neg.slope is not None
    _check_term(pos.slope, U * second, "positive slope", False)
    _check_term(neg.slope, U**2 * second, "negative slope", False)

    # the conjugate
    domain = d.domain
    if not isinstance(domain, sp.Interval):
        raise _Mismatch("the conjugate domain is not an interval")
    low, high = _number(domain.inf, "the domain's end"), _number(domain.sup, "the domain's end")
    with mpmath.workdps(40):
        for x in CHECK_POINTS:
            t = _value(first, {U: mpmath.exp(x)})
            if t is not None and not mp_eval(low, {}) - _REL <= t <= mp_eval(high, {}) + _REL:
                raise _Mismatch(f"f'(e^{x}) is outside the conjugate domain")
    if c.expr is None:
        if c.compilable or c.below is not None or c.top is not None:
            raise _Mismatch("a conjugate without a closed form is compiled")
        return
    fstar = _check_symbols(c.expr, {T}, "f*")
    if c.compilable and not torch_supported(fstar):
        raise _Mismatch("f* uses a function torch lacks")
    if not fenchel_young_holds(fstar, d.generator, d.derivative):  # as closed_form checks it
        raise _Mismatch("f* fails the Fenchel-Young equality")
    if c.below is not None:
        # -f(0+): the sup of u t - f(u) below the domain, approached as u -> 0
        below = _number(c.below, "f* below the domain")
        with mpmath.workdps(40):
            value = _value(f, {U: mpmath.mpf(10) ** -300})
            want = _value(below, {})
            if value is not None and (want is None or abs(want + value) > 1e-6 * (1 + abs(value))):
                raise _Mismatch("f* below the domain is not -f(0+)")
    if c.top is not None:
        top = _number(c.top, "f* at the domain's end")
        if not high.is_finite:
            raise _Mismatch("f* has an end value but the domain has no finite end")
        with mpmath.workdps(330):  # t = sup - 1e-300 (1 + |sup|) must differ from sup
            end = mp_eval(high, {})
            value = _value(fstar, {T: end - mpmath.mpf(10) ** -300 * (1 + abs(end))})
            if top.is_infinite:  # f* grows without bound there: it is large near the end
                if value is not None and not value * (1 if top.is_extended_positive else -1) > 5:
                    raise _Mismatch("f* near the domain's end is not large")
            else:
                want = _value(top, {})
                if value is not None and (
                    want is None or abs(value - want) > 1e-6 * (1 + abs(value))
                ):
                    raise _Mismatch("f* at the domain's end is not its left limit")


# ------------------------------------------------------------------------- loading an entry
#: A cache entry larger than this is not read (the catalog's are about 20 kB).
MAX_ENTRY_BYTES = 4_000_000


def load_entry(text: str, generator: sp.Expr, normalize: bool, key: str) -> Compiled | None:
    """A stored entry (cache JSON text from the disk cache, the catalog or a child process) as
    a compiled divergence, or None when it is not the verified derivation of ``generator``.

    Nothing in ``text`` is executed: the forms are read back through ``serialize.loads`` (a
    whitelist), checked by :func:`verify` against ``generator``, and the module is printed
    from them and executed from that text in memory.
    """
    found = _load(text, generator, normalize, key)
    if isinstance(found, str):
        logger.debug("stored derivation %s not used: %s; deriving again", key, found)
        return None
    return found


def _load(text: str, generator: sp.Expr, normalize: bool, key: str) -> Compiled | str:
    """The compiled entry, or why it is not used."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            return "not a JSON object"
        if data.get("version") != __version__ or data.get("format") != CACHE_FORMAT:
            return "another version or format"
        if data.get("input") != serialize.dumps(generator) or data.get("normalize") != normalize:
            return "filed under another generator"
        d, c, pos, neg = _from_json(data)
    except Exception as err:  # truncated, garbage, a form outside the whitelist
        return f"unreadable ({type(err).__name__}: {err})"
    problem = verify(generator, normalize, d, c, pos, neg)
    if problem is not None:
        return problem
    try:
        return build(d, c, pos, neg, key, True)
    except Exception as err:  # a form the printer refuses
        return f"cannot be printed ({type(err).__name__}: {err})"


def read_entry(path: Path, generator: sp.Expr, normalize: bool, key: str) -> Compiled | None:
    """The verified entry at ``path`` (see :func:`load_entry`), or None (none, or not used)."""
    try:
        if path.stat().st_size > MAX_ENTRY_BYTES:
            logger.debug("stored derivation %s not used: too large; deriving again", key)
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return load_entry(text, generator, normalize, key)
