"""Property checks for f-divergences: for plugin authors, and for this project's own tests.

``check_divergence`` tests, with hypothesis, that a divergence is what f-MICL needs: in float64,
``f(1) = 0``, ``f`` convex, ``f_prime``/``f_second`` its derivatives, ``f_star`` its convex
conjugate (Fenchel-Young), and the composed terms equal to ``f'(exp(log_r))`` and
``u f'(u) - f(u)``; then, in float32 as training runs them, the composed terms, their autograd
gradients and their slopes within 1e-5 of an independent mpmath evaluation of the generator
(and finite in bfloat16), at points chosen to break them (``log_r`` near 0, the piece
boundaries, the tails) and at hypothesis draws. A failure names the property and either
hypothesis's shrunk counterexample or, for the float32 properties, the worst point of each
function with the value it got and the exact one.

Usage::

    import fmicl_registry as fm
    from fmicl_registry.testing import check_divergence

    report = check_divergence(fm.define_divergence("u**a/(a-1)", params={"a": 3},
                                                   normalize=True))
    print(report)          # one PASS/FAIL line per property; raises if any failed

In a pytest suite, the ``fmicl_check`` fixture (installed with the package) does the same::

    def test_my_divergence(fmicl_check):
        fmicl_check("my_div")

``strategies`` has the hypothesis strategies behind the checks (``ratios``, ``log_ratios``,
``float32_log_ratios``, ``conjugate_arguments``, ``divergences``) for writing further
properties; ``reference.GeneratorReference`` the high-precision reference.

The submodules are imported on first use, so importing this package (as the pytest plugin
does in every session) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import strategies
    from .checks import CheckReport, PropertyResult, check_divergence, stress_log_ratios

__all__ = ["CheckReport", "PropertyResult", "check_divergence", "strategies", "stress_log_ratios"]

_FROM_CHECKS = {"CheckReport", "PropertyResult", "check_divergence", "stress_log_ratios"}


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module, __name__)
    except ModuleNotFoundError as err:
        if err.name != "hypothesis":
            raise
        from ..errors import FmiclError

        raise FmiclError(
            "the property kit (fmicl_registry.testing) needs hypothesis, which is not "
            "installed; install it with `pip install 'fmicl-registry[testing]'`"
        ) from None


def __getattr__(name: str) -> Any:
    if name in _FROM_CHECKS:
        return getattr(_import(".checks"), name)
    if name == "strategies":
        return _import(".strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
