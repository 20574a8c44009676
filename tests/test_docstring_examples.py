"""Every docstring example of the package runs and prints what it says (one test per module)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fmicl_registry

MODULES = sorted(m.name for m in pkgutil.walk_packages(fmicl_registry.__path__, "fmicl_registry."))


def test_the_walk_finds_the_package() -> None:
    for name in ("fmicl_registry.divergence", "fmicl_registry.objectives._pairs"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags)
    assert result.failed == 0
