"""Built-in plugin: the divergence catalog, declared as TOML specs in ``specs/divergences``.

Registering reads the TOML files and nothing else (no torch, no sympy): the registry checks
each registration, and a divergence is derived only when one is asked for (its derivation is
shipped too, in ``fmicl_registry/dsl/catalog``).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fmicl_registry._toml import loads_toml
from fmicl_registry.errors import DivergenceSpecError
from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_divergences(register: Any) -> None:
    """Register every spec file shipped in ``fmicl_registry/specs/divergences``."""
    folder = files("fmicl_registry.specs") / "divergences"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        where = f"divergence spec {entry.name}"
        data = loads_toml(entry.read_text(encoding="utf-8"), where, DivergenceSpecError)
        try:
            register(**data)
        except DivergenceSpecError as err:
            raise DivergenceSpecError(f"{where}: {err}") from None
