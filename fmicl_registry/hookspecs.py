"""The plugin contract: every hook fmicl-registry calls, in one file.

A plugin is a module (or object) with functions decorated by ``fmicl_registry.hookimpl`` and
named after these specs. It is found through the entry-point group ``fmicl``::

    # pyproject.toml of a third-party package
    [project.entry-points.fmicl]
    my_plugin = "my_package.fmicl_plugin"

The built-in components are registered by built-in plugins through the very same hooks.
"""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("fmicl")
#: Mark a plugin function as the implementation of a hook (``@fm.hookimpl``).
hookimpl = pluggy.HookimplMarker("fmicl")


class RegisterDivergence(Protocol):
    """The ``register`` callback of ``register_divergences``."""

    def __call__(
        self,
        *,
        name: str,
        generator: str,
        params: dict[str, Any] | None = None,
        normalize: bool = False,
        description: str = "",
        reference: str = "",
    ) -> None: ...


@hookspec
def register_divergences(register: RegisterDivergence) -> None:
    """Register f-divergences by the text of their generator ``f(u)``.

    Call ``register`` once per divergence. ``params`` gives each parameter's default value
    (users override them with ``get_divergence(name, a=2)``); ``normalize=True`` subtracts
    ``f(1)``. Nothing is derived until the divergence is first used.

    Example::

        import fmicl_registry as fm

        @fm.hookimpl
        def register_divergences(register):
            register(
                name="vlc2",
                generator="(u-1)**2/(u+1)",
                description="Vincze-Le Cam",
                reference="Le Cam 1986",
            )

    A package can also ship TOML spec files and register them with
    ``register(**fm.load_divergence_spec(path).as_kwargs())``.
    """
