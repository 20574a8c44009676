"""pytest plugin (entry point ``pytest11``, name ``fmicl``): fixtures for plugin authors.

pytest imports this module in every session of every project installed next to
fmicl-registry, so it imports nothing heavy: torch, sympy and hypothesis load when a test first
uses the fixture.

Example (a plugin's test suite; nothing to configure)::

    def test_my_divergence(fmicl_check):
        fmicl_check("my_div")                        # a registered name
        fmicl_check(my_divergence, max_examples=500)  # or a Divergence
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..divergence import Divergence
    from .checks import CheckReport


@pytest.fixture
def fmicl_check() -> Callable[..., CheckReport]:
    """A callable ``(divergence_or_name, **kw) -> CheckReport`` that fails the test on a bad one.

    It runs :func:`fmicl_registry.testing.check_divergence` (keywords: ``max_examples``,
    ``raise_on_failure``), which raises ``AssertionError`` with the report and the shrunk
    counterexample of each failed property.

    Example:
        >>> def test_js(fmicl_check):
        ...     assert fmicl_check("js", max_examples=20).passed
    """

    def check(divergence: Divergence | str, **kwargs: Any) -> CheckReport:
        __tracebackhide__ = True
        from . import check_divergence  # a clear error when hypothesis is not installed

        return check_divergence(divergence, **kwargs)

    return check
