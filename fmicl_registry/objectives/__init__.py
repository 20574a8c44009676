"""Contrastive objectives: f-MICL (Lu et al. 2023) and the baselines it is compared with, one
per file, each a pure loss function and the ``torch.nn.Module`` that holds its state:

- ``fmicl``: :func:`fmicl_loss`, :class:`FMICL` (the f-MICL objective, any divergence and
  similarity; ``fmicl_loss(..., return_terms=True)`` gives :class:`FMICLTerms`, the loss and
  its two means, which ``FMICL`` keeps as ``last_terms``);
- ``infonce``: :func:`infonce_loss`, :class:`InfoNCE` (SimCLR's NT-Xent),
  :func:`moco_infonce_loss`, :class:`MoCoInfoNCE` (MoCo's InfoNCE);
- ``align_uniform``: :func:`align_uniform_loss`, :class:`AlignUniform` (Wang and Isola);
- ``queue``: :class:`KeyQueue`, MoCo's queue of keys.

A module's ``forward(z1, z2)`` takes the projections ``(N, D)`` of the two views and returns a
scalar loss. Under ``torch.distributed`` (``gather=True``, the default) each process computes
the loss of its own anchors against the negatives of all processes; with DDP's gradient
averaging this is the gradient of one process on the whole batch (``fmicl_registry.distributed``;
``AlignUniform`` does not gather: the log of a mean does not split over processes).

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

from ..errors import ObjectiveError
from .align_uniform import AlignUniform, align_uniform_loss
from .fmicl import FMICL, FMICLTerms, OverflowRiskWarning, check_domain, fmicl_loss
from .infonce import InfoNCE, MoCoInfoNCE, infonce_loss, moco_infonce_loss
from .queue import KeyQueue


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
    "FMICLTerms",
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
