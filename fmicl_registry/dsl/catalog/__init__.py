"""The built-in catalog's derivations, shipped with the package so that first use is fast.

``<name>.json`` is the derivation of the divergence spec ``specs/divergences/<name>.toml``
with its default parameters, in the disk cache's entry format (``dsl.cache``). A definition
whose generator and ``normalize`` match an entry's uses it, verified like any cache entry
(``cache.verify``): a stale or damaged file costs a derivation, never a wrong number. The test
suite checks that every file equals a fresh derivation.

Regenerate them (after changing the derivation, the stabilizer or the printer) with::

    python -m fmicl_registry.dsl.catalog --write

and ``--check`` (exit code 1 when a file is out of date) to see whether they are current.
``FMICL_CATALOG=off`` makes every definition ignore the shipped entries (to derive the catalog
afresh, e.g. when comparing derivations).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sympy as sp


@functools.cache
def _entries() -> dict[tuple[str, bool], str]:
    """The shipped entries by ``(input, normalize)`` (the generator as ``srepr`` text)."""
    found: dict[tuple[str, bool], str] = {}
    for item in files(__name__).iterdir():
        if not item.name.endswith(".json"):
            continue
        try:
            text = item.read_text(encoding="utf-8")
            data = json.loads(text)
            key = (data["input"], data["normalize"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged file is no entry: the divergence is derived
        if isinstance(key[0], str) and isinstance(key[1], bool):
            found[key] = text
    return found


def lookup(generator: sp.Expr, normalize: bool) -> str | None:
    """The shipped entry (JSON text, to be verified by the caller) of ``generator`` with
    ``normalize``, or None."""
    if os.environ.get("FMICL_CATALOG", "").lower() in {"off", "0", "none", "false"}:
        return None
    from .. import serialize

    return _entries().get((serialize.dumps(generator), normalize))


@dataclass(frozen=True)
class Fresh:
    """A catalog entry derived now: the spec's name, the file and the entry's text."""

    name: str
    path: Path
    text: str

    @property
    def current(self) -> bool:
        """Whether the shipped file holds exactly this text."""
        return self.path.exists() and self.path.read_text(encoding="utf-8") == self.text


def specs() -> Iterator[tuple[str, str, dict[str, object], bool]]:
    """``(name, generator, params, normalize)`` of every spec in ``specs/divergences``."""
    from ...definition import load_divergence_spec

    folder = files("fmicl_registry.specs") / "divergences"
    for item in sorted(folder.iterdir(), key=lambda e: e.name):
        if item.name.endswith(".toml"):
            with as_file(item) as path:
                spec = load_divergence_spec(path)
            yield spec.name, spec.generator, dict(spec.params), spec.normalize


def derive_entry(generator: str, params: dict[str, object], normalize: bool) -> str:
    """The entry of a spec derived from scratch (no cache, no catalog)."""
    from ..cache import entry_json
    from ..compile import derive_forms
    from ..parse import exact_number, parse_expression

    values = {k: exact_number(v, f"parameter {k!r}") for k, v in params.items()}
    expr = parse_expression(generator, values)
    return entry_json(expr, normalize, derive_forms(expr, normalize=normalize, text=generator))


def fresh(names: list[str] | None = None) -> list[Fresh]:
    """Every catalog entry (or those of ``names``) derived now."""
    folder = Path(str(files(__name__)))
    return [
        Fresh(name, folder / f"{name}.json", derive_entry(generator, params, normalize))
        for name, generator, params, normalize in specs()
        if names is None or name in names
    ]
