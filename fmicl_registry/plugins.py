"""The plugin manager: built-in plugins first, then entry points of the group ``fmicl``.

Environment:
- ``FMICL_PLUGINS=a,b`` loads only the named entry-point plugins (empty: none of them);
- ``FMICL_STRICT_PLUGINS=1`` turns a plugin that fails to load into an error instead of a
  warning.
"""

from __future__ import annotations

import importlib
import os
import warnings
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from ._version import __version__
from .errors import FmiclError

ENTRY_POINT_GROUP = "fmicl"
BUILTIN_PLUGINS = (
    "fmicl_registry.builtin_plugins.divergences",
    "fmicl_registry.builtin_plugins.similarities",
    "fmicl_registry.builtin_plugins.objectives",
    "fmicl_registry.builtin_plugins.backbones",
    "fmicl_registry.builtin_plugins.architectures",
    "fmicl_registry.builtin_plugins.datasets",
)

_manager: pluggy.PluginManager | None = None
#: plugin name -> (distribution, version), for ``fmicl plugins``.
_origins: dict[str, tuple[str, str]] = {}
#: plugin name -> the error that made it skip.
_failures: dict[str, str] = {}


class PluginError(FmiclError):
    """A plugin failed to load (raised only in strict mode; otherwise a warning)."""


class PluginWarning(UserWarning):
    """A plugin failed to load and was skipped."""


def strict() -> bool:
    """Whether ``FMICL_STRICT_PLUGINS`` asks for errors instead of warnings."""
    return os.environ.get("FMICL_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


def report_broken(plugin: str, error: BaseException) -> None:
    """Warn (or raise, in strict mode) about a plugin that failed."""
    _failures[plugin] = f"{type(error).__name__}: {error}"
    cause = f"{type(error).__name__}: {error}"
    if strict():
        raise PluginError(
            f"fmicl plugin {plugin!r} failed: {cause} (FMICL_STRICT_PLUGINS is set, so this is "
            "an error; unset it to skip the plugin with a warning)"
        ) from error
    warnings.warn(
        f"fmicl plugin {plugin!r} failed and was skipped: {cause} "
        "(set FMICL_STRICT_PLUGINS=1 to make this an error)",
        PluginWarning,
        stacklevel=3,
    )


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allowed = os.environ.get("FMICL_PLUGINS")
    wanted = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as error:  # a broken plugin must not take the library down
            report_broken(ep.name, error)
            continue
        try:
            pm.check_pending()  # a misspelled hook name fails here, naming the function
        except pluggy.PluginValidationError as error:
            pm.unregister(name=ep.name)
            report_broken(ep.name, error)
            continue
        dist = getattr(ep, "dist", None)
        if dist is not None:
            _origins[ep.name] = (dist.metadata["Name"] or "?", dist.version)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created and loaded on first use."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        for name in BUILTIN_PLUGINS:
            short = name.rsplit(".", 1)[-1]
            pm.register(importlib.import_module(name), name=short)
            _origins[short] = ("fmicl-registry (built-in)", __version__)
        _load_entry_points(pm)
        pm.check_pending()
        _manager = pm
    return _manager


def plugin_info() -> list[dict[str, object]]:
    """Every plugin: name, distribution, version, the hooks it implements, and the error of
    each one that was skipped.

    Example:
        >>> from fmicl_registry.plugins import plugin_info
        >>> [p["hooks"] for p in plugin_info() if p["name"] == "divergences"]
        [['register_divergences']]
    """
    pm = get_plugin_manager()
    from .components import registry

    registry()  # runs the hooks, so a plugin that fails in one is known
    rows: list[dict[str, object]] = []
    for name, plugin in pm.list_name_plugin():
        if name is None or plugin is None:
            continue
        distribution, version = _origins.get(name, ("(registered in code)", ""))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        rows.append(
            {
                "name": name,
                "distribution": distribution,
                "version": version,
                "hooks": hooks,
                "error": _failures.get(name),
            }
        )
    for name, error in _failures.items():
        if pm.get_plugin(name) is None:
            rows.append(
                {"name": name, "distribution": "?", "version": "", "hooks": [], "error": error}
            )
    return rows


def reset() -> None:
    """Forget the manager (and everything registered); the next use loads plugins again."""
    global _manager
    _manager = None
    _origins.clear()
    _failures.clear()
    from .components import clear

    clear()
