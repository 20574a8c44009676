"""The catalog derived from scratch (no cache, no shipped entry), to write or check the shipped
entries (``python -m fmicl_registry.dsl.catalog``) and for the test that they are current."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from ...definition import load_divergence_spec
from ..cache import entry_json
from ..compile import derive_forms
from ..parse import exact_number, parse_expression


@dataclass(frozen=True)
class Fresh:
    """A catalog entry derived now: the spec's name, the file and the entry's text."""

    name: str
    path: Path
    text: str

    @property
    def current(self) -> bool:
        """Whether the shipped file holds this derivation (:func:`differences` finds none)."""
        return self.path.exists() and not self.differences()

    def differences(self) -> list[str]:
        """Where the shipped file differs from this derivation (:func:`differences`)."""
        shipped = json.loads(self.path.read_text(encoding="utf-8"))
        return differences(shipped, json.loads(self.text))


#: Two float32 errors (worst relative, of a term's stable pieces) both below this are a few
#: units in the last place: which of two forms that accurate a derivation picks depends on the
#: machine's vector instructions (log1p, exp and tanh round differently with AVX2 and AVX-512),
#: so a fresh derivation on another machine may pick the other one, or measure 8.8e-8 for 9.8e-8.
ULP_NOISE = 1e-6


def differences(shipped: Any, fresh: Any, where: str = "") -> list[str]:
    """The places where two catalog entries differ in what a derivation decides: every
    symbolic form, domain and note exactly; the chosen stable pieces and their measured error
    only when one of the two errors is above :data:`ULP_NOISE` (or they differ by more than a
    factor of two), since below it the choice among equally accurate forms is the machine's.

    Example:
        >>> a = {"exact": "x", "max_rel_error": 9.8e-8, "pieces": ["p"], "forms": ["p"]}
        >>> differences(a, {**a, "max_rel_error": 8.8e-8, "pieces": ["q"], "forms": ["q"]})
        []
        >>> differences(a, {**a, "exact": "y"}), differences(a, {**a, "max_rel_error": 2e-6})
        (['/exact'], ['/max_rel_error'])
    """
    if isinstance(shipped, dict) and isinstance(fresh, dict):
        skip: set[str] = set()
        errors = (shipped.get("max_rel_error"), fresh.get("max_rel_error"))
        if all(isinstance(e, float) for e in errors):
            low, high = sorted(float(e) for e in errors)  # type: ignore[arg-type]
            if high < ULP_NOISE or (low > 0 and high / low <= 2.0):
                skip.add("max_rel_error")
            if high < ULP_NOISE:
                skip |= {"pieces", "forms"}
        found: list[str] = []
        for key in sorted(set(shipped) | set(fresh)):
            if key not in skip:
                found += differences(shipped.get(key), fresh.get(key), f"{where}/{key}")
        return found
    if isinstance(shipped, list) and isinstance(fresh, list) and len(shipped) == len(fresh):
        return [
            place
            for i, (a, b) in enumerate(zip(shipped, fresh, strict=True))
            for place in differences(a, b, f"{where}[{i}]")
        ]
    return [] if shipped == fresh else [where or "/"]


def specs() -> Iterator[tuple[str, str, dict[str, object], bool]]:
    """``(name, generator, params, normalize)`` of every spec in ``specs/divergences``."""
    folder = files("fmicl_registry.specs") / "divergences"
    for item in sorted(folder.iterdir(), key=lambda e: e.name):
        if item.name.endswith(".toml"):
            with as_file(item) as path:
                spec = load_divergence_spec(path)
            yield spec.name, spec.generator, dict(spec.params), spec.normalize


def derive_entry(generator: str, params: dict[str, object], normalize: bool) -> str:
    """The entry of a spec derived from scratch (no cache, no catalog)."""
    values = {k: exact_number(v, f"parameter {k!r}") for k, v in params.items()}
    expr = parse_expression(generator, values)
    return entry_json(expr, normalize, derive_forms(expr, normalize=normalize, text=generator))


def fresh(names: list[str] | None = None) -> list[Fresh]:
    """Every catalog entry (or those of ``names``) derived now."""
    folder = Path(str(files("fmicl_registry.dsl.catalog")))
    return [
        Fresh(name, folder / f"{name}.json", derive_entry(generator, params, normalize))
        for name, generator, params, normalize in specs()
        if names is None or name in names
    ]
