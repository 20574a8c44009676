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

ENTRY_POINT_GROUP = "fmicl"
BUILTIN_PLUGINS = ("fmicl_registry.builtin_plugins.divergences",)

_manager: pluggy.PluginManager | None = None


class PluginError(RuntimeError):
    """A plugin failed to load (raised only in strict mode; otherwise a warning)."""


class PluginWarning(UserWarning):
    """A plugin failed to load and was skipped."""


def strict() -> bool:
    """Whether ``FMICL_STRICT_PLUGINS`` asks for errors instead of warnings."""
    return os.environ.get("FMICL_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


def report_broken(plugin: str, error: BaseException) -> None:
    """Warn (or raise, in strict mode) about a plugin that failed."""
    message = f"fmicl plugin {plugin!r} failed and was skipped: {type(error).__name__}: {error}"
    if strict():
        raise PluginError(message + " (FMICL_STRICT_PLUGINS is set)") from error
    warnings.warn(
        message + " (set FMICL_STRICT_PLUGINS=1 to make this an error)", PluginWarning, stacklevel=3
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
        dist = getattr(ep, "dist", None)
        if dist is not None:
            pm._plugin_distinfo.append((plugin, dist))  # so list_plugin_distinfo() names it


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created and loaded on first use."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        for name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(name), name=name.rsplit(".", 1)[-1])
        _load_entry_points(pm)
        pm.check_pending()
        _manager = pm
    return _manager


def reset() -> None:
    """Forget the manager (and everything registered); the next use loads plugins again."""
    global _manager
    _manager = None
    from .components import clear

    clear()
