"""The examples in the benchmark's docstrings run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["__init__", "gaussians", "truth", "critics", "bench", "report", "command"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(
        "fmicl_registry.mi" if name == "__init__" else f"fmicl_registry.mi.{name}"
    )
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
