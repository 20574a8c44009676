"""The registry of named components, filled by plugins through ``hookspecs``.

Divergences are registered as *specs* (the generator text and its defaults); a ``Divergence``
is derived and compiled from a spec on first use and cached.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._toml import read_toml
from .divergence import Divergence, define_divergence
from .dsl.parse import check_parameter_name, exact_number
from .errors import (
    ArchitectureError,
    BackboneError,
    DatasetError,
    DivergenceSpecError,
    FmiclError,
    ObjectiveError,
    RegistryError,
    SimilarityError,
)
from .hookspecs import DIVERGENCE_KEYS, KINDS


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


_SPEC_KEYS = DIVERGENCE_KEYS


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
        >>> spec = fm.registry().get("similarities", "gaussian")
        >>> spec.kind, spec.plugin
        ('similarities', 'similarities')
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


_COMPONENT_KEYS = ("name", "factory", "description")
_NAME_RULE = "1-64 letters, digits, '_', '-' or '.'"


def _valid_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= 64
        and all(c.isalnum() or c in "_-." for c in name)
    )


def _expected(kind: str) -> str:
    if kind == "divergences":
        return (
            "register_divergences takes register(name=<str>, generator=<str>, params=<dict or "
            "None>, normalize=<bool>, description=<str>, reference=<str>)"
        )
    return f"register_{kind} takes register(name=<str>, factory=<callable>, description=<str>)"


def _got(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _component_from_kwargs(kind: str, kwargs: Mapping[str, Any], plugin: str) -> ComponentSpec:
    """Check one ``register(...)`` call of a component hook; RegistryError says what is wrong."""
    unknown = [k for k in kwargs if k not in _COMPONENT_KEYS]
    missing = [k for k in ("name", "factory") if k not in kwargs]
    if unknown or missing:
        parts = [f"unknown key {k!r}" for k in unknown] + [f"missing key {k!r}" for k in missing]
        raise RegistryError(f"{', '.join(parts)}; got keys {', '.join(kwargs) or 'none'}")
    name, factory = kwargs["name"], kwargs["factory"]
    description = kwargs.get("description", "")
    if not _valid_name(name):
        raise RegistryError(f"name must be a string of {_NAME_RULE}, got {_got(name)}")
    if not callable(factory):
        raise RegistryError(
            f"factory must be callable (a function or class that builds the "
            f"{_singular(kind)}), got {_got(factory)}"
        )
    if not isinstance(description, str):
        raise RegistryError(f"description must be a string, got {_got(description)}")
    return ComponentSpec(kind, name, factory, description, plugin)


def _label(kind: str, kwargs: Mapping[str, Any]) -> str:
    name = kwargs.get("name")
    singular = _singular(kind)
    article = "an" if singular[0] in "aeiou" else "a"
    return f"{singular} {name!r}" if isinstance(name, str) else f"{article} {singular} (unnamed)"


def _impls_builtins_first(hook: Any) -> list[Any]:
    from .plugins import BUILTIN_NAMES

    impls = hook.get_hookimpls()  # registration order: built-ins, then entry points
    return sorted(impls, key=lambda impl: impl.plugin_name not in BUILTIN_NAMES)


def _collect(built: Registry, kind: str, pm: Any) -> None:
    """Run every plugin's ``register_<kind>`` hook into ``built``, built-ins first.

    Each ``register(...)`` call is checked on its own: a wrong one, or a name already taken
    (the first registration, a built-in's above all, is kept), skips that component with one
    ``PluginWarning`` naming the plugin and the component (a ``PluginError`` in strict mode).
    A hook that raises, ``SystemExit`` and a ``KeyboardInterrupt`` of its own included, is
    undone (its components are dropped) and reported as a broken plugin; a real Ctrl-C stops.
    """
    from .plugins import PluginError, report_broken, report_component, watching_ctrl_c

    table = built.table(kind)
    for impl in _impls_builtins_first(getattr(pm.hook, f"register_{kind}")):
        plugin = impl.plugin_name
        added: list[str] = []
        refused: list[PluginError] = []

        def register(
            *,
            _plugin: str = plugin,
            _added: list[str] = added,
            _refused: list[PluginError] = refused,
            **kwargs: Any,
        ) -> None:
            what = _label(kind, kwargs)
            try:
                if kind == "divergences":
                    spec: DivergenceSpec | ComponentSpec = _spec_from_mapping(
                        kwargs, "register_divergences", _plugin
                    )
                else:
                    spec = _component_from_kwargs(kind, kwargs, _plugin)
            except (RegistryError, DivergenceSpecError) as error:
                reason = str(error).removeprefix("register_divergences: ")
                problem, other = f"{reason}; {_expected(kind)}", None
            else:
                other = table.get(spec.name)
                if other is None:
                    built.add(kind, spec)
                    _added.append(spec.name)
                    return
                problem = (
                    f"the name is already registered by plugin {other.plugin!r}, whose "
                    f"{_singular(kind)} is kept; rename it or uninstall one of the two plugins"
                )
            try:
                report_component(_plugin, what, problem)
            except PluginError as error:  # strict mode: kept even if the hook swallows it
                _refused.append(error)
                raise

        with watching_ctrl_c() as ctrl_c:
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except KeyboardInterrupt as error:
                if ctrl_c["pressed"]:
                    raise
                failure: BaseException | None = error
            except (Exception, SystemExit) as error:  # plugin code: contained
                failure = error
            else:
                failure = None
        if refused:
            raise refused[0]
        if failure is not None:
            for name in added:
                del table[name]  # type: ignore[attr-defined]
            report_broken(plugin, failure, f"register_{kind}")


def registry() -> Registry:
    """The registry, with every plugin's components (loads the plugins on first call).

    Example:
        >>> import fmicl_registry as fm
        >>> "js" in fm.registry().names("divergences")
        True
    """
    global _registry
    if _registry is None:
        from .plugins import _skipped, get_plugin_manager

        built = Registry()
        pm = get_plugin_manager()
        _skipped.clear()  # filled again by this build
        for kind in KINDS:
            _collect(built, kind, pm)
        _registry = built
    return _registry


def clear() -> None:
    """Drop the registry so the next call rebuilds it from the plugins."""
    global _registry
    _registry = None


#: The error each kind's ``build`` raises for a bad option (unknown names: ``RegistryError``).
_ERRORS: dict[str, type[FmiclError]] = {
    "divergences": DivergenceSpecError,
    "similarities": SimilarityError,
    "objectives": ObjectiveError,
    "backbones": BackboneError,
    "architectures": ArchitectureError,
    "datasets": DatasetError,
}


def check_options(
    what: str, name: str, factory: Any, options: Mapping[str, Any], error: type[FmiclError]
) -> None:
    """Raise ``error`` naming the accepted options when ``options`` do not fit ``factory``
    (with the closest accepted name for each misspelled one)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to check: let the factory decide
        return
    try:
        signature.bind(**options)
    except TypeError as err:
        accepted = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        hints = [
            f"{close[0]!r} for {key!r}"
            for key in options
            if key not in accepted and (close := difflib.get_close_matches(key, accepted, n=1))
        ]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise error(
            f"{what} {name!r}: {err}{hint}; its options: {', '.join(accepted) or 'none'}"
        ) from None


def build(kind: str, name: str, /, **options: Any) -> Any:
    """Look up the component ``name`` of ``kind``, check ``options`` against its factory and
    build it: the one way every component is made (``fm.get_objective`` and the other
    ``get_*`` functions, training and evaluation all come here).

    An unknown name is a :class:`RegistryError` listing what there is, with the closest names;
    an unknown or missing option is the kind's error (``ObjectiveError``, ``BackboneError``,
    ...) naming the accepted options. For ``divergences`` the options are the generator's
    parameters.

    Example:
        >>> import fmicl_registry as fm
        >>> fm.build("objectives", "infonce", temperature=0.2)
        InfoNCE(temperature=0.2)
        >>> try:
        ...     fm.build("objectives", "infonce", temprature=0.2)
        ... except fm.FmiclError as err:
        ...     print(type(err).__name__, "did you mean 'temperature'" in str(err))
        ObjectiveError True
    """
    if kind == "divergences":
        return registry().divergence(name).build(**options)
    spec = registry().get(kind, name)
    assert isinstance(spec, ComponentSpec)
    check_options(_singular(kind), name, spec.factory, options, _ERRORS.get(kind, RegistryError))
    return spec.build(**options)


def get_component(kind: str, name: str, **options: Any) -> Any:
    """Build a registered component of any kind (the same as :func:`build`).

    Example:
        >>> import fmicl_registry as fm
        >>> fm.get_component("objectives", "no-such-loss")
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.RegistryError: no objective named 'no-such-loss'. ...
    """
    return build(kind, name, **options)


def get_divergence(name: str, **params: Any) -> Divergence:
    """A registered divergence by name, with optional parameter overrides.

    Example:
        >>> import fmicl_registry as fm
        >>> fm.get_divergence("tsallis", a=2).generator
        u**2 - 1
    """
    return build("divergences", name, **params)


def list_divergences() -> list[str]:
    """The names of all registered divergences, sorted.

    Example:
        >>> import fmicl_registry as fm
        >>> "kl" in fm.list_divergences()
        True
    """
    return sorted(registry().divergences)
