"""The docstring examples of the DSL and of ``Divergence`` run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "fmicl_registry.dsl.ops",
    "fmicl_registry.dsl.stabilize",
    "fmicl_registry.dsl.printer",
    "fmicl_registry.divergence",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
