"""The paper's table of divergences, typed in by hand (Lu et al. 2023).

The independent reference for every numerical test: nothing here uses the library. For each
catalog name, ``(f'(u), f*(t))`` as mpmath functions. Tsallis (a = 3/2, the catalog default) is
normalised, so its ``f*`` is shifted by the ``1/(a-1)`` that normalisation subtracts.
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath

Fn = Callable[[mpmath.mpf], mpmath.mpf]
A = mpmath.mpf(3) / 2  # the catalog's Tsallis parameter


def _w(t: mpmath.mpf) -> mpmath.mpf:
    return mpmath.lambertw(mpmath.exp(1 - t)).real


TEXTBOOK: dict[str, tuple[Fn, Fn]] = {
    "kl": (lambda u: mpmath.log(u) + 1, lambda t: mpmath.exp(t - 1)),
    "js": (lambda u: mpmath.log(2 * u / (u + 1)), lambda t: -mpmath.log(2 - mpmath.exp(t))),
    "pearson": (lambda u: 2 * (u - 1), lambda t: t**2 / 4 + t),
    "sh": (lambda u: 1 - u ** mpmath.mpf(-0.5), lambda t: t / (1 - t)),
    "tsallis": (
        lambda u: A * u ** (A - 1) / (A - 1),
        lambda t: ((A - 1) * t / A) ** (A / (A - 1)) + 1 / (A - 1),
    ),
    "vlc": (lambda u: 1 - 4 / (u + 1) ** 2, lambda t: 4 - t - 4 * mpmath.sqrt(1 - t)),
    "reverse_kl": (lambda u: -1 / u, lambda t: -1 - mpmath.log(-t)),
    "neyman": (lambda u: 1 - u**-2, lambda t: 2 - 2 * mpmath.sqrt(1 - t)),
    "jeffrey": (lambda u: mpmath.log(u) + 1 - 1 / u, lambda t: _w(t) + 1 / _w(t) + t - 2),
}
