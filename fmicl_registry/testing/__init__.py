"""Property checks for f-divergences: for plugin authors, and for this project's own tests.

``check_divergence`` tests, with hypothesis and in float64, that a divergence is what f-MICL
needs: ``f(1) = 0``, ``f`` convex, ``f_prime``/``f_second`` its derivatives, ``f_star`` its
convex conjugate (Fenchel-Young), and the composed terms equal to ``f'(exp(log_r))`` and
``u f'(u) - f(u)``. A failure names the property and hypothesis's shrunk counterexample.

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
``conjugate_arguments``, ``divergences``) for writing further properties.

The submodules are imported on first use, so importing this package (as the pytest plugin
does in every session) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import strategies
    from .checks import CheckReport, PropertyResult, check_divergence

__all__ = ["CheckReport", "PropertyResult", "check_divergence", "strategies"]

_FROM_CHECKS = {"CheckReport", "PropertyResult", "check_divergence"}


def __getattr__(name: str) -> Any:
    if name in _FROM_CHECKS:
        return getattr(importlib.import_module(".checks", __name__), name)
    if name == "strategies":
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
