"""The docstring examples of the objectives layer run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "fmicl_registry.similarities",
    "fmicl_registry.distributed",
    "fmicl_registry.objectives",
    "fmicl_registry.objectives.functional",
    "fmicl_registry.objectives.modules",
    "fmicl_registry.objectives.negatives",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
