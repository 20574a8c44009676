"""Hypothesis strategies for property tests of f-divergences.

Example:
    >>> from hypothesis import given
    >>> import fmicl_registry as fm
    >>> from fmicl_registry.testing import strategies as fst
    >>> js = fm.get_divergence("js")
    >>> @given(u=fst.ratios(), t=fst.conjugate_arguments(js))
    ... def test_fenchel_young(u, t):
    ...     import torch
    ...     u_, t_ = torch.tensor(u, dtype=torch.float64), torch.tensor(t, dtype=torch.float64)
    ...     assert js.f(u_) + js.f_star(t_) >= u * t - 1e-9
    >>> test_fenchel_young()
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sympy as sp
from hypothesis import strategies as st

if TYPE_CHECKING:
    from ..divergence import Divergence

__all__ = ["conjugate_arguments", "divergences", "float32_log_ratios", "log_ratios", "ratios"]


def ratios(low: float = 1e-4, high: float = 1e4) -> st.SearchStrategy[float]:
    """Density ratios ``u`` in ``[low, high]`` (``0 < low < high``), spread over every decade.

    Half the draws are log-uniform (``exp`` of a float in ``[log low, log high]``), so tiny and
    huge ratios are as common as ratios near 1; the other half are plain floats in the range,
    which shrink to simple values such as ``1.0`` or ``2.0`` and so give readable
    counterexamples.

    Example:
        >>> from hypothesis import given
        >>> @given(ratios())
        ... def test_positive(u):
        ...     assert 1e-4 <= u <= 1e4
        >>> test_positive()
    """
    if not 0 < low < high or not math.isfinite(high):
        raise ValueError(f"ratios() needs 0 < low < high < inf, got low={low!r}, high={high!r}")
    log_uniform = st.floats(math.log(low), math.log(high)).map(
        lambda x: min(max(math.exp(x), low), high)
    )
    return st.one_of(st.floats(low, high), log_uniform)


def log_ratios(low: float = -30.0, high: float = 30.0) -> st.SearchStrategy[float]:
    """Log density ratios ``log_r`` in ``[low, high]``: the input of the composed terms.

    Half the draws come from ``[-1, 1]`` (clipped to the range): ``u`` within a factor ``e`` of
    1, where stable forms switch pieces and cancellation is worst; the rest span the range.

    Example:
        >>> from hypothesis import given
        >>> @given(log_ratios(-5, 5))
        ... def test_range(log_r):
        ...     assert -5 <= log_r <= 5
        >>> test_range()
    """
    if not low < high or not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"log_ratios() needs finite low < high, got low={low!r}, high={high!r}")
    near_low, near_high = max(low, -1.0), min(high, 1.0)
    if near_low >= near_high:
        return st.floats(low, high)
    return st.one_of(st.floats(low, high), st.floats(near_low, near_high))


def float32_log_ratios(low: float = -80.0, high: float = 80.0) -> st.SearchStrategy[float]:
    """float32 log density ratios in ``[low, high]`` (every draw is exactly a float32 value):
    the input the composed terms get in training.

    A third of the draws span the range, a third come from ``[-1, 1]`` and a third from
    ``[-1e-4, 1e-4]`` (both clipped to the range), where the terms cancel (``log_r = 0`` is
    ``u = 1``, where ``f'`` and ``u f'(u) - f(u)`` are differences of nearly equal numbers).

    Example:
        >>> import numpy as np
        >>> from hypothesis import given
        >>> @given(float32_log_ratios(-5, 5))
        ... def test_float32(log_r):
        ...     assert -5 <= log_r <= 5 and float(np.float32(log_r)) == log_r
        >>> test_float32()
    """
    if not low < high or not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(
            f"float32_log_ratios() needs finite low < high, got low={low!r}, high={high!r}"
        )
    bands = [_float32_floats(low, high)]
    for half in (1.0, 1e-4):
        near_low, near_high = max(low, -half), min(high, half)
        if near_low < near_high:
            bands.append(_float32_floats(near_low, near_high))
    return st.one_of(*bands)


def _float32_floats(low: float, high: float) -> st.SearchStrategy[float]:
    """float32 values in ``[low, high]``, the bounds rounded inwards to float32 first (as
    ``st.floats(width=32)`` wants)."""
    import numpy as np

    lo, hi = np.float32(low), np.float32(high)
    if float(lo) < low:
        lo = np.nextafter(lo, np.float32(np.inf))
    if float(hi) > high:
        hi = np.nextafter(hi, np.float32(-np.inf))
    if lo > hi:
        raise ValueError(f"no float32 value lies in [{low!r}, {high!r}]")
    return st.floats(float(lo), float(hi), width=32)


def conjugate_arguments(
    d: Divergence, *, margin: float = 1e-3, span: float = 50.0
) -> st.SearchStrategy[float]:
    """Arguments ``t`` of ``f*`` strictly inside ``d.conjugate_domain`` (the range of ``f'``).

    ``f*`` usually blows up at an open finite end of the domain (JS: ``-log(2 - e^t)`` at
    ``t = log 2``), so the draws keep a gap of ``margin`` from each finite end, scaled by the
    end's magnitude (at least 1) and never more than the domain's width. An infinite end is
    replaced by ``-span`` or ``+span`` (measured from the finite end, if there is one).

    Raises:
        ValueError: the domain is not an interval with an interior.

    Example:
        >>> import fmicl_registry as fm
        >>> from hypothesis import given
        >>> js = fm.get_divergence("js")          # domain (-oo, log 2)
        >>> @given(conjugate_arguments(js))
        ... def test_inside(t):
        ...     assert -50 <= t < 0.6922
        >>> test_inside()
    """
    domain = d.conjugate_domain
    if not isinstance(domain, sp.Interval) or domain.measure == 0:
        raise ValueError(
            f"the conjugate domain of {d.name!r} is {domain}, not an interval with an interior; "
            "is f' constant (f linear)?"
        )
    inf = float(domain.inf) if domain.inf.is_finite else None
    sup = float(domain.sup) if domain.sup.is_finite else None
    width = math.inf if inf is None or sup is None else sup - inf
    if inf is None:
        low = (0.0 if sup is None else sup) - span
    else:
        low = inf + margin * min(max(1.0, abs(inf)), width)
    if sup is None:
        high = (0.0 if inf is None else inf) + span
    else:
        high = sup - margin * min(max(1.0, abs(sup)), width)
    return st.floats(low, high)


def divergences(names: Sequence[str] | None = None) -> st.SearchStrategy[Divergence]:
    """Registered divergences (all of ``fm.list_divergences()``, or ``names``), built on draw.

    Example:
        >>> from hypothesis import given
        >>> @given(divergences(["kl", "js"]))
        ... def test_has_conjugate_domain(d):
        ...     assert d.conjugate_domain.measure > 0
        >>> test_has_conjugate_domain()
    """
    import fmicl_registry as fm

    choices = list(fm.list_divergences() if names is None else names)
    if not choices:
        raise ValueError("divergences() has no names to draw from")
    return st.sampled_from(choices).map(fm.get_divergence)
