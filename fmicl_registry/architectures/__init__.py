"""Architectures: how two views become a loss, for any registered objective.

A factory takes ``backbone=`` (an ``nn.Module`` with ``output_dim``), ``objective=`` and its
own options, and returns an ``nn.Module`` whose ``forward(view1, view2)`` is the scalar loss,
with attributes ``encoder`` (the backbone whose features evaluation uses) and ``objective``.
Each factory class has ``default_backbone``, the backbone to use when a spec names none. The
built-in plugin registers:

- ``simclr``: :class:`SimCLR` (Chen et al. 2020), the f-MICL paper's vision setup;
- ``moco``: :class:`MoCo`, MoCo v2 (He et al. 2020; Chen et al. 2020), queue of keys;
- ``mocov3``: :class:`MoCoV3` (Chen, Xie and He 2021), predictor and symmetric loss;
- ``simcse``: :class:`SimCSE` (Gao, Yao and Chen 2021), unsupervised: a text encoder run twice
  on the same sentences, the two dropout masks making the two views.

The f-MICL objective replaces InfoNCE in each without changing the architecture (Lu et al.
2023). Momentum encoders are in ``.parameters()`` with ``requires_grad=False``: pass
``[p for p in model.parameters() if p.requires_grad]`` to the optimizer.

Example:
    >>> import torch, fmicl_registry as fm
    >>> from fmicl_registry.architectures import get_architecture
    >>> model = get_architecture(
    ...     "simclr",
    ...     backbone="small_cnn",
    ...     backbone_options={"input_shape": (1, 8, 8)},
    ...     objective=fm.get_objective("fmicl", divergence="kl"),
    ... )
    >>> model(torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)).ndim
    0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ._common import ArchitectureError, accepts_queue
from .heads import MLPHead
from .moco import MoCo
from .mocov3 import MoCoV3
from .momentum import ema_update, frozen_copy, shuffled_forward, split_forward
from .simclr import SimCLR
from .simcse import SimCSE


def default_backbone(name: str) -> str:
    """The backbone a registered architecture uses when none is named.

    Example:
        >>> default_backbone("mocov3")
        'vit_small'
    """
    from ..components import ComponentSpec, registry

    spec = registry().get("architectures", name)
    assert isinstance(spec, ComponentSpec)
    backbone = getattr(spec.factory, "default_backbone", None)
    if not isinstance(backbone, str):
        raise ArchitectureError(
            f"architecture {name!r} (plugin {spec.plugin!r}) has no default_backbone; name a "
            "backbone"
        )
    return backbone


def get_architecture(
    name: str,
    *,
    objective: Any,
    backbone: nn.Module | str | None = None,
    backbone_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> nn.Module:
    """A registered architecture built with ``options``; unknown options are an
    :class:`ArchitectureError` listing the accepted ones.

    ``backbone``: a module, a registered backbone name (built with ``backbone_options``), or
    None for the architecture's ``default_backbone``.

    Example:
        >>> import fmicl_registry as fm
        >>> get_architecture("moco", objective=fm.get_objective("fmicl"), momentun=0.9)
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.ArchitectureError: architecture 'moco': ...
    """
    from ..components import build

    if backbone is None:
        backbone = default_backbone(name)
    if isinstance(backbone, str):
        backbone = build("backbones", backbone, **dict(backbone_options or {}))
    elif backbone_options:
        raise ArchitectureError(
            "backbone_options apply to a backbone given by name; build the module with them"
        )
    return build("architectures", name, backbone=backbone, objective=objective, **options)


__all__ = [
    "ArchitectureError",
    "MLPHead",
    "MoCo",
    "MoCoV3",
    "SimCLR",
    "SimCSE",
    "accepts_queue",
    "default_backbone",
    "ema_update",
    "frozen_copy",
    "get_architecture",
    "shuffled_forward",
    "split_forward",
]
