"""Contrastive objectives: f-MICL (Lu et al. 2023) and the baselines it is compared with.

``functional`` holds the maths as pure functions, ``modules`` the ``torch.nn.Module`` wrappers
(state: a queue of keys; gathering across processes), ``_pairs`` (private) the choice of
f-MICL's negative pairs and the chunked sums over them.
The built-in plugin registers ``fmicl``, ``infonce``, ``moco_infonce`` and ``align_uniform``.

Example:
    >>> import torch, fmicl_registry as fm
    >>> loss_fn = fm.get_objective("fmicl", divergence="js", similarity="gaussian", alpha=40.0)
    >>> z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
    >>> loss_fn(z1, z2).ndim
    0
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .functional import (
    ObjectiveError,
    align_uniform_loss,
    check_domain,
    fmicl_loss,
    infonce_loss,
    moco_infonce_loss,
)
from .modules import FMICL, AlignUniform, InfoNCE, KeyQueue, MoCoInfoNCE, OverflowRiskWarning


def get_objective(name: str, **options: Any) -> nn.Module:
    """A registered objective, built with ``options`` (``fm.get_objective``).

    Example:
        >>> import fmicl_registry as fm
        >>> fm.get_objective("infonce", temperature=0.1)
        InfoNCE(temperature=0.1)
        >>> fm.get_objective("infonce", temprature=0.1)
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.ObjectiveError: objective 'infonce': ...
    """
    from ..components import build

    return build("objectives", name, **options)


__all__ = [
    "FMICL",
    "AlignUniform",
    "InfoNCE",
    "KeyQueue",
    "MoCoInfoNCE",
    "ObjectiveError",
    "OverflowRiskWarning",
    "align_uniform_loss",
    "check_domain",
    "fmicl_loss",
    "get_objective",
    "infonce_loss",
    "moco_infonce_loss",
]
