"""Built-in plugin: the divergence catalog, declared as TOML specs in ``specs/divergences``."""

from __future__ import annotations

from importlib.resources import as_file, files
from typing import Any

from fmicl_registry.components import load_divergence_spec
from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_divergences(register: Any) -> None:
    """Register every spec file shipped in ``fmicl_registry/specs/divergences``."""
    folder = files("fmicl_registry.specs") / "divergences"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            with as_file(entry) as path:
                register(**load_divergence_spec(path, plugin="divergences").as_kwargs())
