"""Built-in plugin: the architectures of Lu et al. 2023's experiments, any objective plugs in."""

from __future__ import annotations

from typing import Any

from fmicl_registry.hookspecs import hookimpl


@hookimpl
def register_architectures(register: Any) -> None:
    """``simclr``, ``moco`` (v2), ``mocov3`` and ``simcse``."""
    from fmicl_registry.architectures import MoCo, MoCoV3, SimCLR, SimCSE

    register(
        name="simclr",
        factory=SimCLR,
        description="shared encoder + 3-layer projection head, two views (Chen et al. 2020; "
        "the f-MICL setup) (head_layers, hidden_dim, out_dim)",
    )
    register(
        name="moco",
        factory=MoCo,
        description="MoCo v2: momentum key encoder, queue of keys as extra negatives, shuffled "
        "BN (He et al. 2020) (momentum, queue_size, hidden_dim, out_dim, symmetric, ...)",
    )
    register(
        name="mocov3",
        factory=MoCoV3,
        description="MoCo v3: momentum encoder, predictor, symmetric loss, no queue (Chen, Xie "
        "and He 2021) (momentum, hidden_dim, out_dim, predictor_hidden_dim, ...)",
    )
    register(
        name="simcse",
        factory=SimCSE,
        description="unsupervised SimCSE: a text encoder run twice on the same sentences, "
        "dropout makes the two views, linear+tanh head in training only (Gao, Yao and Chen "
        "2021) (out_dim)",
    )
