"""An independent high-precision reference for the composed terms, from the generator alone.

``check_divergence`` holds the compiled terms to this reference. It is built from
``Divergence.generator`` (sympy, in ``u``) and nothing else the library derived: ``f'`` and
``f''`` come from ``sympy.diff`` of the generator (or ``mpmath.diff`` where mpmath cannot
evaluate sympy's derivative), and the four references at ``u = exp(log_r)`` are

=====================  ==================  ===============================
function               value               d / d log_r
=====================  ==================  ===============================
``positive_term``      ``f'(u)``           ``u f''(u)``
``negative_term``      ``u f'(u) - f(u)``  ``u^2 f''(u)``
=====================  ==================  ===============================

Each point is evaluated with mpmath at :data:`DPS` digits and again at twice that; where the two
disagree (cancellation: ``u f'(u) - f(u)`` at ``u`` near 1, ``f'`` of a nearly linear ``f``) the
precision keeps doubling until they agree, so the reference is right to far more digits than
float32 has, whatever the generator cancels.

Example:
    >>> import fmicl_registry as fm
    >>> from fmicl_registry.testing.reference import GeneratorReference
    >>> ref = GeneratorReference(fm.get_divergence("kl").generator)   # f(u) = u log u
    >>> [round(v, 12) for v in ref.at(0.0)]     # f'(1), 1 f''(1), 1 f'(1) - f(1), 1^2 f''(1)
    [1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..dsl.evaluate import mp_eval

__all__ = ["DPS", "FUNCTIONS", "GeneratorReference"]

#: Digits of the first evaluation; the second uses twice as many.
DPS = 50
#: The most digits tried before a point is given up as undetermined (NaN: not checked).
MAX_DPS = 800
#: Two evaluations agree when they differ by at most this, relative...
AGREE = 1e-24
#: ...or absolutely by this (far below the 1e-30 floor of the relative error).
AGREE_ABS = 1e-45
#: Magnitudes from here on are taken as mpmath's saturated "huge" (``2**4096``), not a value.
_SATURATED = mpmath.mpf(2) ** 4000

#: The four reference functions, in the order :meth:`GeneratorReference.at` returns them.
FUNCTIONS = ("positive_term", "positive_gradient", "negative_term", "negative_gradient")

Mp = Any  # an mpmath number


def _u_symbol(generator: sp.Expr) -> sp.Symbol:
    for symbol in generator.free_symbols:
        if isinstance(symbol, sp.Symbol) and symbol.name == "u":
            return symbol
    return sp.Symbol("u", positive=True)  # a constant generator: f' = f'' = 0


def _real(value: Mp) -> Mp | None:
    """The real number ``value`` is, or None (complex, NaN, or saturated)."""
    if isinstance(value, mpmath.mpc):
        if value.imag != 0 and abs(value.imag) > 1e-40 * max(abs(value.real), 1):
            return None
        value = value.real
    if not mpmath.isfinite(value) or abs(value) >= _SATURATED:
        return None
    return value


class GeneratorReference:
    """``f'(u)``, ``u f''(u)``, ``u f'(u) - f(u)``, ``u^2 f''(u)`` at ``u = exp(log_r)``, from
    ``generator`` alone, accurate to many more digits than float32 has; cached per point.

    A value is NaN where it is undefined, complex, or too large for mpmath's saturated
    arithmetic to resolve (far beyond float32 in any case): such points are not checked.
    """

    def __init__(self, generator: sp.Expr) -> None:
        self.generator = generator
        self._u = _u_symbol(generator)
        first = sp.diff(generator, self._u)
        self._derivatives: list[sp.Expr | None] = [first, sp.diff(first, self._u)]
        self._cache: dict[float, tuple[float, float, float, float]] = {}

    # ---------------------------------------------------------------------------- evaluation
    def _f(self, u: Mp) -> Mp:
        return mp_eval(self.generator, {self._u: u})

    def _derivative(self, order: int, u: Mp) -> Mp:
        expr = self._derivatives[order - 1]
        if expr is not None:
            try:
                return mp_eval(expr, {self._u: u})
            except NotImplementedError:  # sympy's derivative uses a node mpmath lacks
                self._derivatives[order - 1] = None
        return mpmath.diff(self._f, u, order)

    def _exact(self, log_r: float, dps: int) -> list[Mp | None]:
        with mpmath.workdps(dps):
            u = mpmath.exp(mpmath.mpf(log_r))
            parts: list[Mp | None] = []
            for compute in (self._f, self._one(1), self._one(2)):
                try:
                    parts.append(_real(compute(u)))
                except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                    parts.append(None)
            f, f1, f2 = parts
            return [
                f1,
                None if f2 is None else u * f2,
                None if f is None or f1 is None else u * f1 - f,
                None if f2 is None else u * u * f2,
            ]

    def _one(self, order: int) -> Callable[[Mp], Mp]:
        return lambda v: self._derivative(order, v)

    def at(self, log_r: float) -> tuple[float, float, float, float]:
        """The four references (:data:`FUNCTIONS`) at ``log_r``, as floats (NaN: none)."""
        key = float(log_r)
        found = self._cache.get(key)
        if found is not None:
            return found
        low = self._exact(key, DPS)
        dps = DPS
        result = [math.nan] * 4
        pending = set(range(4))
        while pending and dps < MAX_DPS:
            dps *= 2
            high = self._exact(key, dps)
            with mpmath.workdps(dps):
                for i in sorted(pending):
                    a, b = low[i], high[i]
                    if a is None or b is None:
                        if a is None and b is None:
                            pending.discard(i)  # undefined at both precisions: NaN
                        continue
                    if abs(a - b) <= AGREE * abs(b) + AGREE_ABS:
                        result[i] = float(b)  # beyond float64: inf, and so beyond float32
                        pending.discard(i)
            low = high
        found = (result[0], result[1], result[2], result[3])
        self._cache[key] = found
        return found

    def many(self, log_r: Iterable[float]) -> np.ndarray:
        """:meth:`at` for each point: an array of shape ``(4, n)`` (rows: :data:`FUNCTIONS`)."""
        rows = [self.at(float(x)) for x in log_r]
        return np.array(rows, dtype=np.float64).reshape(-1, 4).T
