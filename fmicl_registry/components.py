"""The registry of named components, filled by plugins through ``hookspecs``.

Divergences are registered as *specs* (the generator text and its defaults); a ``Divergence``
is derived and compiled from a spec on first use and cached.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._toml import read_toml
from .divergence import Divergence, define_divergence
from .dsl.parse import check_parameter_name, exact_number
from .errors import DivergenceSpecError, RegistryError
from .hookspecs import KINDS


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
    data = {k: v for k, v in data.items() if not (k == "params" and v is None)}  # None: no params
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
    data = read_toml(path, "divergence spec", DivergenceSpecError)
    return _spec_from_mapping(data, str(path), plugin)


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component other than a divergence: its factory and where it came from.

    Example:
        >>> import fmicl_registry as fm
        >>> spec = fm.registry().get("divergences", "kl")
        >>> spec.plugin
        'divergences'
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = "user"

    def build(self, **options: Any) -> Any:
        """Call the factory with ``options``."""
        return self.factory(**options)


def _singular(kind: str) -> str:
    return {"similarities": "similarity", "divergences": "divergence"}.get(kind, kind[:-1])


class Registry:
    """Every registered component, by kind and name (filled from the plugins on first use).

    ``divergences`` maps names to :class:`DivergenceSpec`; ``components[kind]`` maps names to
    :class:`ComponentSpec` for the other kinds of ``hookspecs.KINDS``.
    """

    def __init__(self) -> None:
        self.divergences: dict[str, DivergenceSpec] = {}
        self.components: dict[str, dict[str, ComponentSpec]] = {k: {} for k in KINDS[1:]}

    def table(self, kind: str) -> Mapping[str, DivergenceSpec | ComponentSpec]:
        """The name -> spec mapping of one kind."""
        if kind == "divergences":
            return self.divergences
        if kind not in self.components:
            raise RegistryError(f"no kind {kind!r}; the kinds are: {', '.join(KINDS)}")
        return self.components[kind]

    def names(self, kind: str) -> list[str]:
        """The registered names of one kind, sorted."""
        return sorted(self.table(kind))

    def add(self, kind: str, spec: DivergenceSpec | ComponentSpec) -> None:
        """Register a spec; a second one of the same kind and name is an error naming both."""
        table = self.table(kind)
        other = table.get(spec.name)
        if other is not None:
            raise RegistryError(
                f"{_singular(kind)} {spec.name!r} is registered twice: by plugin "
                f"{other.plugin!r} and by plugin {spec.plugin!r}; uninstall one or rename its "
                f"{_singular(kind)}"
            )
        table[spec.name] = spec  # type: ignore[index]

    def get(self, kind: str, name: str) -> DivergenceSpec | ComponentSpec:
        """The spec of ``kind`` called ``name``, or an error listing what there is and where
        it comes from, with the closest names first."""
        table = self.table(kind)
        if name in table:
            return table[name]
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
        hint = (
            " Did you mean " + ", ".join(f"{c!r} (plugin {table[c].plugin!r})" for c in close) + "?"
            if close
            else ""
        )
        available = ", ".join(f"{n} ({table[n].plugin})" for n in sorted(table)) or "none"
        how = (
            'call define_divergence("<f(u)>") or register it in a plugin'
            if kind == "divergences"
            else f"register it with the register_{kind} hook of a plugin"
        )
        raise RegistryError(
            f"no {_singular(kind)} named {name!r}.{hint} Available (plugin): {available}. "
            f"To add your own, {how}; `fmicl plugins` lists the loaded plugins."
        )

    def divergence(self, name: str) -> DivergenceSpec:
        """The divergence spec called ``name``."""
        spec = self.get("divergences", name)
        assert isinstance(spec, DivergenceSpec)
        return spec


_registry: Registry | None = None


def _collect(built: Registry, kind: str, pm: Any) -> None:
    from .plugins import report_broken

    hook = getattr(pm.hook, f"register_{kind}")
    for impl in hook.get_hookimpls():  # built-ins first, then entry points
        plugin = impl.plugin_name

        def register(*, _plugin: str = plugin, **kwargs: Any) -> None:
            if kind == "divergences":
                built.add(kind, _spec_from_mapping(kwargs, f"plugin {_plugin!r}", _plugin))
                return
            unknown = sorted(set(kwargs) - {"name", "factory", "description"})
            if unknown or "name" not in kwargs or not callable(kwargs.get("factory")):
                raise RegistryError(
                    f"plugin {_plugin!r}: register_{kind} takes register(name=..., "
                    f"factory=<callable>, description=...); got {sorted(kwargs)}"
                )
            name = str(kwargs["name"])
            spec = ComponentSpec(
                kind, name, kwargs["factory"], kwargs.get("description", ""), _plugin
            )
            built.add(kind, spec)

        try:
            impl.function(register=register)
        except (RegistryError, DivergenceSpecError):
            raise
        except Exception as error:
            report_broken(plugin, error)


def registry() -> Registry:
    """The registry, with every plugin's components (loads the plugins on first call).

    Example:
        >>> import fmicl_registry as fm
        >>> "js" in fm.registry().names("divergences")
        True
    """
    global _registry
    if _registry is None:
        from .plugins import get_plugin_manager

        built = Registry()
        pm = get_plugin_manager()
        for kind in KINDS:
            _collect(built, kind, pm)
        _registry = built
    return _registry


def clear() -> None:
    """Drop the registry so the next call rebuilds it from the plugins."""
    global _registry
    _registry = None


def get_component(kind: str, name: str, **options: Any) -> Any:
    """Build a registered component of any kind but divergences from its factory.

    Example:
        >>> import fmicl_registry as fm
        >>> fm.get_component("objectives", "no-such-loss")
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.RegistryError: no objective named 'no-such-loss'. ...
    """
    if kind == "divergences":
        return get_divergence(name, **options)
    spec = registry().get(kind, name)
    assert isinstance(spec, ComponentSpec)
    return spec.build(**options)


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
