"""The registry of named components, filled by plugins through ``hookspecs``.

Divergences are registered as *specs* (the generator text and its defaults); a ``Divergence``
is derived and compiled from a spec on first use and cached.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .divergence import Divergence, define_divergence
from .dsl.parse import check_parameter_name, exact_number
from .errors import DivergenceSpecError


@dataclass(frozen=True)
class DivergenceSpec:
    """A registered divergence: what a plugin or a TOML file declares.

    Example:
        >>> import fmicl_registry as fm
        >>> spec = fm.registry().divergences["tsallis"]
        >>> spec.params
        {'a': 1.5}
    """

    name: str
    generator: str
    params: dict[str, Any] = field(default_factory=dict)
    normalize: bool = False
    description: str = ""
    reference: str = ""
    plugin: str = "user"

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the ``register`` callback."""
        return {
            "name": self.name,
            "generator": self.generator,
            "params": dict(self.params),
            "normalize": self.normalize,
            "description": self.description,
            "reference": self.reference,
        }

    def build(self, **params: Any) -> Divergence:
        """Derive and compile, with ``params`` overriding the defaults."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise DivergenceSpecError(
                f"divergence {self.name!r} has no parameter {unknown[0]!r} "
                f"(its parameters: {known})"
            )
        return define_divergence(
            self.generator,
            name=self.name,
            params={**self.params, **params},
            normalize=self.normalize,
            description=self.description,
            reference=self.reference,
            source=self.plugin,
        )


_SPEC_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a string"),
    "generator": (str, "a string (an expression in u)"),
    "params": (dict, "a table of numbers, e.g. [params] a = 1.5"),
    "normalize": (bool, "true or false"),
    "description": (str, "a string"),
    "reference": (str, "a string"),
}


def _spec_from_mapping(data: Mapping[str, Any], where: str, plugin: str) -> DivergenceSpec:
    for key, value in data.items():
        if key not in _SPEC_KEYS:
            allowed = ", ".join(_SPEC_KEYS)
            raise DivergenceSpecError(f"{where}: unknown key {key!r} (allowed: {allowed})")
        expected, words = _SPEC_KEYS[key]
        if not isinstance(value, expected):
            raise DivergenceSpecError(
                f"{where}: key {key!r} must be {words}, got {type(value).__name__} {value!r}"
            )
    for key in ("name", "generator"):
        if key not in data:
            raise DivergenceSpecError(f"{where}: missing key {key!r}")
    name = data["name"].strip()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "_-." for c in name):
        raise DivergenceSpecError(
            f"{where}: name {name!r} must be 1-64 letters, digits, '_', '-' or '.'"
        )
    params = dict(data.get("params", {}))
    for key, value in params.items():
        check_parameter_name(key)
        exact_number(value, f"{where}: parameter {key!r}")
    return DivergenceSpec(
        name=name,
        generator=data["generator"],
        params=params,
        normalize=data.get("normalize", False),
        description=data.get("description", ""),
        reference=data.get("reference", ""),
        plugin=plugin,
    )


def load_divergence_spec(path: str | Path, *, plugin: str = "user") -> DivergenceSpec:
    """Read a divergence declared in a TOML file (nothing in it is executed).

    The file has the keys ``name``, ``generator`` and optionally ``normalize``,
    ``description``, ``reference`` and a ``[params]`` table of defaults::

        name = "tsallis"
        generator = "u**a/(a-1)"
        normalize = true
        description = "Tsallis entropy family"
        reference = "Lu et al. 2023, Table 1"

        [params]
        a = 1.5

    Example:
        >>> import fmicl_registry as fm, pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "sq.toml"
        >>> _ = path.write_text('name = "sq"\\ngenerator = "(u-1)**2"\\n')
        >>> fm.load_divergence_spec(path).generator
        '(u-1)**2'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DivergenceSpecError(f"cannot read divergence spec {path}: {err.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise DivergenceSpecError(f"{path}: not valid TOML: {err}") from None
    return _spec_from_mapping(data, str(path), plugin)


class Registry:
    """Every registered component, by kind and name (filled from the plugins on first use)."""

    def __init__(self) -> None:
        self.divergences: dict[str, DivergenceSpec] = {}

    def add_divergence(self, spec: DivergenceSpec) -> None:
        """Register a spec; a second spec of the same name is an error naming both plugins."""
        other = self.divergences.get(spec.name)
        if other is not None:
            raise DivergenceSpecError(
                f"divergence {spec.name!r} is registered twice: by plugin {other.plugin!r} and "
                f"by plugin {spec.plugin!r}; uninstall one or rename its divergence"
            )
        self.divergences[spec.name] = spec

    def divergence(self, name: str) -> DivergenceSpec:
        """The spec called ``name``, or an error that lists what there is."""
        try:
            return self.divergences[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(name, list(self.divergences), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        available = ", ".join(sorted(self.divergences))
        raise DivergenceSpecError(
            f"no divergence named {name!r}.{hint} Available: {available}. "
            'To use your own, call define_divergence("<f(u)>") or register it in a plugin.'
        ) from None


_registry: Registry | None = None


def registry() -> Registry:
    """The registry, with every plugin's components (loads the plugins on first call)."""
    global _registry
    if _registry is None:
        from .plugins import get_plugin_manager, report_broken

        built = Registry()
        pm = get_plugin_manager()
        for impl in pm.hook.register_divergences.get_hookimpls():  # built-ins first
            plugin = impl.plugin_name

            def register(*, _plugin: str = plugin, **kwargs: Any) -> None:
                where = f"plugin {_plugin!r}"
                built.add_divergence(_spec_from_mapping(kwargs, where, _plugin))

            try:
                impl.function(register=register)
            except DivergenceSpecError:
                raise
            except Exception as error:
                report_broken(plugin, error)
        _registry = built
    return _registry


def clear() -> None:
    """Drop the registry so the next call rebuilds it from the plugins."""
    global _registry
    _registry = None


def get_divergence(name: str, **params: Any) -> Divergence:
    """A registered divergence by name, with optional parameter overrides.

    Example:
        >>> import fmicl_registry as fm
        >>> fm.get_divergence("tsallis", a=2).generator
        u**2 - 1
    """
    return registry().divergence(name).build(**params)


def list_divergences() -> list[str]:
    """The names of all registered divergences, sorted.

    Example:
        >>> import fmicl_registry as fm
        >>> "kl" in fm.list_divergences()
        True
    """
    return sorted(registry().divergences)
