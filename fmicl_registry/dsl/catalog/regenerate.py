"""The catalog derived from scratch (no cache, no shipped entry), to write or check the shipped
entries (``python -m fmicl_registry.dsl.catalog``) and for the test that they are current."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

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
        """Whether the shipped file holds exactly this text."""
        return self.path.exists() and self.path.read_text(encoding="utf-8") == self.text


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
