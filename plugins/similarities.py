"""Built-in plugin: the similarities of Lu et al. 2023 (f-Gaussian, cosine)."""

from __future__ import annotations

from typing import Any

from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_similarities(register: Any) -> None:
    """``gaussian`` (the f-Gaussian log ratio) and ``cosine`` (a critic)."""
    from fmicl_registry.similarities import Cosine, Gaussian

    register(
        name="gaussian",
        factory=Gaussian,
        description="f-Gaussian log ratio log mu - gamma ||x - y||^2 of unit vectors (gamma, mu)",
    )
    register(
        name="cosine",
        factory=Cosine,
        description="critic scale <x, y> of unit vectors, used as s and f*(s) (scale)",
    )
