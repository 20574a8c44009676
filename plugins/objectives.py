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
        # alpha: the paper's ablation (CIFAR-10 kNN, KL: 13.2 / 77.6 / 83.5 / 84.2 at alpha =
        # 0.1 / 1 / 10 / 40) finds alpha < 1 far worse and uses 40 for vision (409600 for
        # text with its own batch); [1, 1000] holds both slopes of that curve. gamma:
        # 1 / (2 sigma^2) of the f-Gaussian; the paper uses 1 for vision and 20 for text; on
        # unit vectors ||x - y||^2 <= 4, so gamma = 0.1 spans 0.4 of log ratio (nearly flat)
        # and gamma = 20 spans 80, near where exp leaves float32.
        search_space={
            "alpha": {"range": [1.0, 1000.0], "log": True},
            "gamma": {"range": [0.1, 20.0], "log": True},
        },
    )
    register(
        name="infonce",
        factory=InfoNCE,
        description="NT-Xent as in SimCLR: 2N views, 2N-2 negatives (Chen et al. 2020)",
        # SimCLR's temperature study spans 0.05-1 (Chen et al. 2020, Table 5); SimCSE uses 0.05
        search_space={"temperature": {"range": [0.02, 1.0], "log": True}},
    )
    register(
        name="moco_infonce",
        factory=MoCoInfoNCE,
        description="InfoNCE against a queue of keys (MoCo v2, He et al. 2020)",
        search_space={"temperature": {"range": [0.02, 1.0], "log": True}},
    )
    register(
        name="align_uniform",
        factory=AlignUniform,
        description="alignment + uniformity on the hypersphere (Wang and Isola 2020)",
        # Wang and Isola 2020 find t in [1, 10] and lam near 1 work; alpha = 2 is theirs
        search_space={
            "t": {"range": [0.5, 10.0], "log": True},
            "lam": {"range": [0.1, 10.0], "log": True},
        },
    )
