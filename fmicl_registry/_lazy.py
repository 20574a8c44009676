"""Lazy names for a package's ``__init__`` (PEP 562): a name imports its module on first use.

Keeps ``import fmicl_registry`` cheap: torch and sympy load when a name that needs them is used.

Example:
    >>> import types
    >>> __getattr__, __dir__ = lazy_names("fmicl_registry", {"get_divergence": "components"})
    >>> isinstance(__getattr__("get_divergence"), types.FunctionType)
    True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: ``where`` maps each lazy
    name to the submodule (relative to ``package``) that defines it. A name, once loaded, is
    set on the package, so later uses do not come back here; ``__dir__`` lists ``__all__``."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(getattr(sys.modules[package], "__all__", where))

    return __getattr__, __dir__
