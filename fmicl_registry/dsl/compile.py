"""The pipeline from a generator to a compiled divergence: derive, conjugate, choose stable
forms, print and build the torch module, cache.

``compile_generator`` looks for a stored derivation first (the built-in ``catalog``, then the
disk cache, ``cache``), checks it against the generator and builds its module (``codegen``);
else it derives the generator
(``derive_forms``), builds the module and stores the derivation. Nothing read from outside is
executed: modules are printed from verified forms and executed from that text.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import sympy as sp

from .._version import __version__
from ..errors import DivergenceSpecError
from . import catalog
from .cache import (
    CACHE_FORMAT,
    cache_dir,
    cache_key,
    entry_json,
    load_entry,
    read_entry,
    verify,
    write_entry,
)
from .codegen import (
    TERM_FUNCTIONS,
    Compiled,
    build,
    form_function,
    module_from_source,
    render_module,
    term_functions,
)
from .conjugate import Conjugate, closed_form
from .derive import Derivation, derive, simplified
from .parse import U
from .stabilize import StableTerm, choose

__all__ = [
    "CACHE_FORMAT",
    "TERM_FUNCTIONS",
    "Compiled",
    "cache_dir",
    "cache_key",
    "compile_generator",
    "derive_forms",
    "entry_json",
    "form_function",
    "load_entry",
    "module_from_source",
    "render_module",
    "term_functions",
    "verify",
]


def derive_forms(
    generator: sp.Expr, *, normalize: bool, text: str | None = None
) -> tuple[Derivation, Conjugate, StableTerm, StableTerm]:
    """Derive, conjugate and choose the stable composed terms of ``generator`` (no cache)."""
    d = derive(generator, normalize=normalize, text=text)
    c = closed_form(d.generator, d.derivative, d.domain)
    pos = dataclasses.replace(
        choose(d.derivative),
        slope=choose(simplified(U * d.second_derivative), gradient=False),
    )
    neg = dataclasses.replace(
        choose(simplified(sp.expand_log(U * d.derivative - d.generator, force=True))),
        slope=choose(simplified(U**2 * d.second_derivative), gradient=False),
    )
    return d, c, pos, neg


def compile_generator(
    generator: sp.Expr,
    *,
    normalize: bool,
    text: str | None = None,
    derive_entry: Callable[[], str] | None = None,
) -> Compiled:
    """Derive, check and compile ``generator`` (a sympy expression in ``u``).

    A stored derivation is used when there is one and it verifies: the catalog's shipped with
    the package first, then the disk cache's; else the generator is derived and the derivation
    is kept in the disk cache. ``derive_entry``, when given, derives elsewhere (in a child
    process: ``worker.derive_in_child``) and returns the entry's JSON text, which is verified
    like a stored one before it is used.
    """
    key = cache_key(generator, normalize)
    shipped = catalog.lookup(generator, normalize)
    if shipped is not None:
        found = load_entry(shipped, generator, normalize, key)
        if found is not None:
            return found
    folder = cache_dir()
    target = None if folder is None else folder / __version__ / f"{key}.json"
    if target is not None and target.exists():
        cached = read_entry(target, generator, normalize, key)
        if cached is not None:
            return cached
    if derive_entry is None:
        forms = derive_forms(generator, normalize=normalize, text=text)
        compiled = build(*forms, key, False)
        entry = entry_json(generator, normalize, forms)
    else:
        entry = derive_entry()
        loaded = load_entry(entry, generator, normalize, key)
        if loaded is None:
            raise DivergenceSpecError(
                "the derivation made in a separate process does not verify against the "
                "generator; define it in the main thread to see why",
                text=text,
            )
        compiled = dataclasses.replace(loaded, from_cache=False)
    if target is not None:
        with contextlib.suppress(OSError):  # read-only or full disk: keep nothing
            write_entry(target, entry)
    return compiled
