"""Built-in plugin: f-MICL and the baselines it is compared with (Lu et al. 2023)."""

from __future__ import annotations

from typing import Any

from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_objectives(register: Any) -> None:
    """``fmicl``, ``infonce``, ``moco_infonce`` and ``align_uniform``."""
    from fmicl_registry.objectives import FMICL, AlignUniform, InfoNCE, MoCoInfoNCE

    register(
        name="fmicl",
        factory=FMICL,
        description="f-MICL: any f-divergence, f-Gaussian or cosine similarity (Lu et al. 2023)",
    )
    register(
        name="infonce",
        factory=InfoNCE,
        description="NT-Xent as in SimCLR: 2N views, 2N-2 negatives (Chen et al. 2020)",
    )
    register(
        name="moco_infonce",
        factory=MoCoInfoNCE,
        description="InfoNCE against a queue of keys (MoCo v2, He et al. 2020)",
    )
    register(
        name="align_uniform",
        factory=AlignUniform,
        description="alignment + uniformity on the hypersphere (Wang and Isola 2020)",
    )
