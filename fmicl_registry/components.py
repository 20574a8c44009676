"""The registry: every component the plugins register, by kind and name, and the one way to
build one (:func:`build`: look up, check the options, build).

The plugin manager (``plugins``) loads the built-in and the installed plugins; the registry
runs each kind's ``register_<kind>`` hook the first time that kind is asked for, checks every
registration and keeps the valid ones. A divergence is registered as its definition (a
:class:`~fmicl_registry.definition.DivergenceSpec`) and derived when it is built; every other
component as a factory (:class:`ComponentSpec`). Nothing here imports torch or sympy: listing
the divergences is fast, and only building a component loads what it needs.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import plugins
from .definition import NAME_RULE, DivergenceSpec, ParamRange, spec_from_mapping, valid_name
from .errors import (
    ArchitectureError,
    AugmentationError,
    BackboneError,
    DatasetError,
    DivergenceSpecError,
    FmiclError,
    ObjectiveError,
    RegistryError,
    SimilarityError,
    SpecError,
)
from .hookspecs import KINDS

if TYPE_CHECKING:
    from .divergence import Divergence


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
    #: An objective's tunable options and their ranges (``fmicl tune``): option -> range.
    search_space: Mapping[str, ParamRange] = field(default_factory=dict)

    def build(self, **options: Any) -> Any:
        """Check ``options`` against the factory's signature (the kind's error names the
        accepted ones) and call it."""
        check_options(singular(self.kind), self.name, self.factory, options, _error(self.kind))
        return self.factory(**options)


Spec = DivergenceSpec | ComponentSpec

#: The error each kind raises for options its factory does not take.
_ERRORS: dict[str, type[FmiclError]] = {
    "divergences": DivergenceSpecError,
    "similarities": SimilarityError,
    "objectives": ObjectiveError,
    "backbones": BackboneError,
    "architectures": ArchitectureError,
    "datasets": DatasetError,
    "augmentations": AugmentationError,
    "loggers": SpecError,  # a logger is asked for by a spec (train.logger)
}


def _error(kind: str) -> type[FmiclError]:
    return _ERRORS.get(kind, RegistryError)


def singular(kind: str) -> str:
    """``"similarities"`` -> ``"similarity"``, ``"backbones"`` -> ``"backbone"``."""
    return {"similarities": "similarity", "divergences": "divergence"}.get(kind, kind[:-1])


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


# ------------------------------------------------------------------ checking registrations

_COMPONENT_KEYS = ("name", "factory", "description", "search_space")


def _search_space(kind: str, value: object, factory: Any) -> dict[str, ParamRange]:
    """Check an objective's ``search_space={option: {"range": [low, high], "log": bool}}``."""
    if kind != "objectives":
        raise RegistryError("search_space is for objectives only (what fmicl tune searches)")
    example = "e.g. search_space={'temperature': {'range': [0.02, 1.0], 'log': True}}"
    if not isinstance(value, Mapping):
        raise RegistryError(f"search_space must be a dict of option -> range, {example}")
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = set()
    space = {}
    for option, entry in value.items():
        where = f"search_space[{option!r}]"
        if accepted and option not in accepted:
            raise RegistryError(f"{where}: the factory takes no option {option!r}")
        if not isinstance(entry, Mapping) or set(entry) - {"range", "log"} or "range" not in entry:
            raise RegistryError(f"{where} must be {{'range': [low, high], 'log': bool}}, {example}")
        bounds = entry["range"]
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise RegistryError(f"{where}: range must be [low, high] with low < high, {example}")
        try:
            space[option] = ParamRange(bounds[0], bounds[1], entry.get("log", False))
        except DivergenceSpecError as err:
            raise RegistryError(f"{where}: {err}") from None
    return space


def _got(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _expected(kind: str) -> str:
    if kind == "divergences":
        return (
            "register_divergences takes register(name=<str>, generator=<str>, params=<dict or "
            "None>, normalize=<bool>, description=<str>, reference=<str>)"
        )
    extra = ", search_space=<dict>" if kind == "objectives" else ""
    return (
        f"register_{kind} takes register(name=<str>, factory=<callable>, description=<str>{extra})"
    )


def _component(kind: str, kwargs: Mapping[str, Any], plugin: str) -> ComponentSpec:
    """Check one ``register(...)`` call of a factory hook; RegistryError says what is wrong."""
    unknown = [k for k in kwargs if k not in _COMPONENT_KEYS]
    missing = [k for k in ("name", "factory") if k not in kwargs]
    if unknown or missing:
        parts = [f"unknown key {k!r}" for k in unknown] + [f"missing key {k!r}" for k in missing]
        raise RegistryError(f"{', '.join(parts)}; got keys {', '.join(kwargs) or 'none'}")
    name, factory = kwargs["name"], kwargs["factory"]
    description = kwargs.get("description", "")
    if not valid_name(name):
        raise RegistryError(f"name must be a string of {NAME_RULE}, got {_got(name)}")
    if not callable(factory):
        raise RegistryError(
            f"factory must be callable (a function or class that builds the "
            f"{singular(kind)}), got {_got(factory)}"
        )
    if not isinstance(description, str):
        raise RegistryError(f"description must be a string, got {_got(description)}")
    space = _search_space(kind, kwargs["search_space"], factory) if "search_space" in kwargs else {}
    return ComponentSpec(kind, name, factory, description, plugin, space)


def _registration(kind: str, kwargs: Mapping[str, Any], plugin: str) -> Spec:
    """The spec of one ``register(...)`` call, checked; the error says what is wrong."""
    if kind == "divergences":
        return spec_from_mapping(kwargs, "register_divergences", plugin)
    return _component(kind, kwargs, plugin)


def _label(kind: str, kwargs: Mapping[str, Any]) -> str:
    name = kwargs.get("name")
    what = singular(kind)
    article = "an" if what[0] in "aeiou" else "a"
    return f"{what} {name!r}" if isinstance(name, str) else f"{article} {what} (unnamed)"


def _collect(table: dict[str, Spec], kind: str, pm: Any) -> None:
    """Run every plugin's ``register_<kind>`` hook into ``table``, built-ins first.

    Each ``register(...)`` call is checked on its own: a wrong one, or a name already taken
    (the first registration, a built-in's above all, is kept), skips that component with one
    ``PluginWarning`` naming the plugin and the component (a ``PluginError`` in strict mode).
    A hook that raises, ``SystemExit`` and a ``KeyboardInterrupt`` of its own included, is
    undone (its components are dropped) and reported as a broken plugin; a real Ctrl-C stops.
    """
    for impl in plugins.builtins_first(getattr(pm.hook, f"register_{kind}")):
        plugin = impl.plugin_name
        added: list[str] = []
        refused: list[plugins.PluginError] = []

        def register(
            *,
            _plugin: str = plugin,
            _added: list[str] = added,
            _refused: list[plugins.PluginError] = refused,
            **kwargs: Any,
        ) -> None:
            try:
                spec = _registration(kind, kwargs, _plugin)
            except (RegistryError, DivergenceSpecError) as error:
                reason = str(error).removeprefix("register_divergences: ")
                problem = f"{reason}; {_expected(kind)}"
            else:
                other = table.get(spec.name)
                if other is None:
                    table[spec.name] = spec
                    _added.append(spec.name)
                    return
                problem = (
                    f"the name is already registered by plugin {other.plugin!r}, whose "
                    f"{singular(kind)} is kept; rename it or uninstall one of the two plugins"
                )
            try:
                plugins.report_component(_plugin, _label(kind, kwargs), problem)
            except plugins.PluginError as error:  # strict: kept even if the hook swallows it
                _refused.append(error)
                raise

        failure = plugins.call_plugin(impl.function, register=register)
        if refused:
            raise refused[0]
        if failure is not None:
            for name in added:
                del table[name]
            plugins.report_broken(plugin, failure, f"register_{kind}")


# ------------------------------------------------------------------ the registry


class Registry:
    """Every registered component, by kind and name; each kind's hooks run when the kind is
    first asked for.

    ``get(kind, name)`` gives a :class:`~fmicl_registry.definition.DivergenceSpec` for a
    divergence and a :class:`ComponentSpec` for the other kinds of ``hookspecs.KINDS``.
    """

    def __init__(self, pm: Any) -> None:
        self._pm = pm
        self._tables: dict[str, dict[str, Spec]] = {}

    def table(self, kind: str) -> Mapping[str, Spec]:
        """The name -> spec mapping of one kind."""
        if kind not in KINDS:
            raise RegistryError(f"no kind {kind!r}; the kinds are: {', '.join(KINDS)}")
        if kind not in self._tables:
            table: dict[str, Spec] = {}
            _collect(table, kind, self._pm)
            self._tables[kind] = table
        return self._tables[kind]

    @property
    def divergences(self) -> Mapping[str, DivergenceSpec]:
        """The divergence definitions by name."""
        return self.table("divergences")  # type: ignore[return-value]

    def divergence(self, name: str) -> DivergenceSpec:
        """The definition of the divergence called ``name``."""
        spec = self.get("divergences", name)
        assert isinstance(spec, DivergenceSpec)
        return spec

    def names(self, kind: str) -> list[str]:
        """The registered names of one kind, sorted."""
        return sorted(self.table(kind))

    def get(self, kind: str, name: str) -> Spec:
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
            f"no {singular(kind)} named {name!r}.{hint} Available (plugin): {available}. "
            f"To add your own, {how}; `fmicl plugins` lists the loaded plugins."
        )


_registry: Registry | None = None


def registry() -> Registry:
    """The registry of the loaded plugins (loads them on first call; rebuilt when the plugin
    manager is).

    Example:
        >>> import fmicl_registry as fm
        >>> "js" in fm.registry().names("divergences")
        True
    """
    global _registry
    pm = plugins.get_plugin_manager()
    if _registry is None or _registry._pm is not pm:
        plugins.forget_skipped()  # filled again as the hooks run
        _registry = Registry(pm)
    return _registry


def clear() -> None:
    """Drop what the hooks registered, so the next use runs them again (after a plugin is
    registered with the manager in code, as the tests do)."""
    global _registry
    _registry = None


def build(kind: str, name: str, /, **options: Any) -> Any:
    """Look up the component ``name`` of ``kind``, check ``options`` against it and build it:
    the one way every component is made (``fm.get_objective`` and the other ``get_*``
    functions, training and evaluation all come here).

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
    spec = registry().get(kind, name)
    if isinstance(spec, DivergenceSpec):  # a definition: derived, not called
        from .divergence import define

        return define(spec.with_params(**options))
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
    return registry().names("divergences")


def plugin_info() -> list[dict[str, object]]:
    """Every plugin: name, distribution, version, the hooks it implements, the error of each
    one that was skipped, and the components skipped from each one that loaded (every kind's
    hooks are run first, so a plugin that fails in one is known).

    Example:
        >>> from fmicl_registry.components import plugin_info
        >>> [p["hooks"] for p in plugin_info() if p["name"] == "divergences"]
        [['register_divergences']]
    """
    built = registry()
    for kind in KINDS:
        built.table(kind)
    return plugins.plugin_rows(built._pm)
