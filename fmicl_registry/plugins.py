"""The plugin manager: built-in plugins first, then entry points of the group ``fmicl``.

Code a user did not write runs here, so every way a plugin can fail is contained: an entry
point that raises (even ``SystemExit`` or ``KeyboardInterrupt``) while importing, a hook that
raises, an import that hangs, a misspelled hook name. The plugin is skipped with one
``PluginWarning`` that names it and says what went wrong; the built-ins and the other plugins
keep working.

Environment:
- ``FMICL_PLUGINS=a,b`` loads only the named entry-point plugins (empty: none of them);
- ``FMICL_STRICT_PLUGINS=1`` turns every plugin warning (a plugin that fails to load, a
  component registered wrongly or twice) into a ``PluginError``;
- ``FMICL_PLUGIN_NOTICE`` (seconds, default 5): when a plugin's import has not finished after
  this long, a line on stderr names the plugin and says how to skip it;
- ``FMICL_PLUGIN_TIMEOUT`` (seconds, default 60): a plugin whose import has not finished after
  this long is skipped with a warning. Python cannot stop a thread, so the import goes on in a
  background (daemon) thread that is abandoned; it cannot block the exit of the program.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from ._version import __version__
from .errors import PluginError

ENTRY_POINT_GROUP = "fmicl"
BUILTIN_PLUGINS = (
    "fmicl_registry.builtin_plugins.divergences",
    "fmicl_registry.builtin_plugins.similarities",
    "fmicl_registry.builtin_plugins.objectives",
    "fmicl_registry.builtin_plugins.backbones",
    "fmicl_registry.builtin_plugins.architectures",
    "fmicl_registry.builtin_plugins.datasets",
    "fmicl_registry.builtin_plugins.augmentations",
    "fmicl_registry.builtin_plugins.loggers",
    "fmicl_registry.builtin_plugins.bench_mi",
    "fmicl_registry.builtin_plugins.export",
    "fmicl_registry.builtin_plugins.tune",
)
#: The names the built-in plugins are registered under.
BUILTIN_NAMES = frozenset(name.rsplit(".", 1)[-1] for name in BUILTIN_PLUGINS)
#: Seconds before the notice about a slow plugin import, and before it is given up on.
DEFAULT_NOTICE_S = 5.0
DEFAULT_TIMEOUT_S = 60.0

_manager: pluggy.PluginManager | None = None
#: plugin name -> (distribution, version), for ``fmicl plugins``.
_origins: dict[str, tuple[str, str]] = {}
#: plugin name -> the error that made it skip.
_failures: dict[str, str] = {}
#: plugin name -> the components of it that were skipped, each with the reason.
_skipped: dict[str, list[str]] = {}
#: entry-point name -> the imported plugin, or the error its import ended with; an entry
#: point is imported (and waited for) once per process, however many managers load it.
_imported: dict[str, object] = {}
#: warnings already shown, so that loading twice (a fast path, then the registry) warns once.
_reported: set[str] = set()


class PluginWarning(UserWarning):
    """A plugin, or one of its components, failed and was skipped."""


class PluginTimeout(Exception):
    """A plugin's import did not finish within ``FMICL_PLUGIN_TIMEOUT`` seconds."""


def strict() -> bool:
    """Whether ``FMICL_STRICT_PLUGINS`` asks for errors instead of warnings."""
    return os.environ.get("FMICL_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


def describe_error(error: BaseException) -> str:
    """One line saying what a plugin's code raised; ``SystemExit`` and ``KeyboardInterrupt``
    are named for what they are (a plugin that exits or interrupts is a broken plugin)."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r}), which a plugin must not do"
    if isinstance(error, KeyboardInterrupt):
        return "it raised KeyboardInterrupt itself (no Ctrl-C was pressed)"
    return f"{type(error).__name__}: {error}"


def _warn_or_raise(message: str, error: BaseException | None = None) -> None:
    if strict():
        raise PluginError(
            f"{message} (FMICL_STRICT_PLUGINS is set, so this is an error; unset it to skip "
            "with a warning)"
        ) from error
    if message in _reported:
        return
    _reported.add(message)
    warnings.warn(
        f"{message} (set FMICL_STRICT_PLUGINS=1 to make this an error)", PluginWarning, stacklevel=4
    )


def report_broken(plugin: str, error: BaseException, where: str = "") -> None:
    """Warn (or raise, in strict mode) about a plugin that failed; ``where`` names the hook
    when it failed in one."""
    cause = describe_error(error)
    _failures[plugin] = cause
    during = f" in {where}" if where else ""
    _warn_or_raise(f"fmicl plugin {plugin!r} failed{during} and was skipped: {cause}", error)


def report_component(plugin: str, what: str, problem: str) -> None:
    """Warn (or raise, in strict mode) about one component of a plugin that was skipped:
    ``what`` is e.g. ``"backbone 'badbone'"`` and ``problem`` says what is wrong with it."""
    _skipped.setdefault(plugin, []).append(f"{what}: {problem}")
    _warn_or_raise(f"fmicl plugin {plugin!r}: {what} was skipped: {problem}")


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise PluginError(f"{variable} must be a number of seconds above 0, got {text!r}")
    return value


def _import(ep: EntryPoint, others: list[str]) -> object:
    """Import an entry point in a daemon thread, with a notice on stderr when it is slow and a
    ``PluginTimeout`` when it takes longer than ``FMICL_PLUGIN_TIMEOUT``.

    Anything the import raises, ``SystemExit`` and ``KeyboardInterrupt`` included, is returned
    to the caller as the plugin's error (a real Ctrl-C reaches the main thread, which is
    waiting here and stops).
    """
    if ep.name in _imported:
        return _imported[ep.name]
    notice = _seconds("FMICL_PLUGIN_NOTICE", DEFAULT_NOTICE_S)
    limit = _seconds("FMICL_PLUGIN_TIMEOUT", DEFAULT_TIMEOUT_S)
    outcome: dict[str, object] = {}
    done = threading.Event()

    def load() -> None:
        try:
            outcome["plugin"] = ep.load()
        except BaseException as error:  # plugin code: nothing it raises may end the program
            outcome["plugin"] = error
        finally:
            done.set()

    thread = threading.Thread(target=load, name=f"fmicl plugin {ep.name}", daemon=True)
    thread.start()
    if not done.wait(min(notice, limit)) and notice < limit:
        skip = ",".join(others)
        print(
            f"fmicl: waiting for plugin {ep.name!r} ({ep.value}) to finish importing "
            f"({notice:g} s so far); it is skipped after {limit:g} s (FMICL_PLUGIN_TIMEOUT). "
            f"To skip it, run with FMICL_PLUGINS={skip!r}, which loads the other plugins only.",
            file=sys.stderr,
            flush=True,
        )
        done.wait(limit - notice)
    if not done.is_set():
        outcome["plugin"] = PluginTimeout(
            f"its import did not finish within {limit:g} s (FMICL_PLUGIN_TIMEOUT); "
            f"skip it with FMICL_PLUGINS={','.join(others)!r}"
        )
    _imported[ep.name] = outcome["plugin"]
    return outcome["plugin"]


def _origin(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("?", "")
    return (dist.metadata["Name"] or "?", dist.version)


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allowed = os.environ.get("FMICL_PLUGINS")
    wanted = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    chosen = [
        ep for ep in entry_points(group=ENTRY_POINT_GROUP) if wanted is None or ep.name in wanted
    ]
    seen: dict[str, tuple[str, str]] = {}
    for ep in chosen:
        if ep.name in BUILTIN_NAMES or ep.name in seen:
            first = "fmicl-registry (built-in)" if ep.name in BUILTIN_NAMES else seen[ep.name][0]
            _warn_or_raise(
                f"fmicl plugin {ep.name!r} of distribution {_origin(ep)[0]!r} was skipped: a "
                f"plugin of that name is already loaded from {first!r}; rename its entry point"
            )
            continue
        seen[ep.name] = _origin(ep)
        if pm.get_plugin(ep.name) is not None:
            continue
        others = sorted({other.name for other in chosen} - {ep.name})
        plugin = _import(ep, others)
        if isinstance(plugin, BaseException):
            report_broken(ep.name, plugin)
            continue
        try:
            pm.register(plugin, name=ep.name)
        except Exception as error:  # e.g. the same module under two names
            report_broken(ep.name, error)
            continue
        try:
            pm.check_pending()  # a misspelled hook name fails here, naming the function
        except pluggy.PluginValidationError as error:
            pm.unregister(name=ep.name)
            report_broken(ep.name, error)
            continue
        if getattr(ep, "dist", None) is not None:
            _origins[ep.name] = _origin(ep)


@contextlib.contextmanager
def watching_ctrl_c() -> Iterator[dict[str, bool]]:
    """While plugin code runs in the main thread, tell a real Ctrl-C from a plugin that raises
    ``KeyboardInterrupt`` itself: ``state["pressed"]`` is set by the SIGINT handler, which then
    interrupts as before."""
    state = {"pressed": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        state["pressed"] = True
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not allowed here (an embedded interpreter): nothing to tell apart
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


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


def builtins_first(hook: Any) -> list[Any]:
    """The implementations of ``hook``, the built-in plugins' first (then in the order the
    plugins were loaded), so that a built-in keeps its names."""
    impls = hook.get_hookimpls()  # registration order: built-ins, then entry points
    return sorted(impls, key=lambda impl: impl.plugin_name not in BUILTIN_NAMES)


def call_plugin(function: Any, **kwargs: Any) -> BaseException | None:
    """Call a plugin's hook function and return what it raised (None when it returned).

    Anything it raises is contained, ``SystemExit`` and a ``KeyboardInterrupt`` of its own
    included; a real Ctrl-C (and a ``PluginError`` of strict mode) goes through.
    """
    with watching_ctrl_c() as ctrl_c:
        try:
            function(**kwargs)
        except PluginError:
            raise
        except KeyboardInterrupt as error:
            if ctrl_c["pressed"]:
                raise
            return error
        except (Exception, SystemExit) as error:  # plugin code: contained
            return error
    return None


def forget_skipped() -> None:
    """Forget the components skipped so far (the registry's hooks are about to run again)."""
    _skipped.clear()


def plugin_rows(pm: pluggy.PluginManager) -> list[dict[str, object]]:
    """Every plugin of ``pm``: name, distribution, version, the hooks it implements, the error
    of each one that was skipped, and the components skipped from each one that loaded."""
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
                "skipped": list(_skipped.get(name, [])),
            }
        )
    for name, error in _failures.items():
        if pm.get_plugin(name) is None:
            rows.append(
                {
                    "name": name,
                    "distribution": "?",
                    "version": "",
                    "hooks": [],
                    "error": error,
                    "skipped": [],
                }
            )
    return rows


def reset() -> None:
    """Forget the manager and what loading it recorded; the next use loads the plugins again
    (and the registry, which follows the manager, runs their hooks again)."""
    global _manager
    _manager = None
    _origins.clear()
    _failures.clear()
    _skipped.clear()
    _imported.clear()
    _reported.clear()
