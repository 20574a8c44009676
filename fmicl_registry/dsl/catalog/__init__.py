"""The built-in catalog's derivations, shipped with the package so that first use is fast.

``<name>.json`` is the derivation of the divergence spec ``specs/divergences/<name>.toml``
with its default parameters, in the disk cache's entry format (``dsl.cache``). A definition
whose generator and ``normalize`` match an entry's uses it, verified like any cache entry
(``cache.verify``): a stale or damaged file costs a derivation, never a wrong number. The test
suite checks that every file equals a fresh derivation.

Regenerate them (after changing the derivation, the stabilizer or the printer) with::

    python -m fmicl_registry.dsl.catalog --write

(the derivation from scratch is ``regenerate.py``; this module only looks entries up).

and ``--check`` (exit code 1 when a file is out of date) to see whether they are current.
``FMICL_CATALOG=off`` makes every definition ignore the shipped entries (to derive the catalog
afresh, e.g. when comparing derivations).
"""

from __future__ import annotations

import functools
import json
import os
from importlib.resources import files
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
