"""Alignment and uniformity on the hypersphere (Wang and Isola 2020, eq. 4-5), the two
properties f-MICL's objectives share with InfoNCE (Lu et al. 2023).

:func:`align_uniform_loss` is pure; :class:`AlignUniform` holds its weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_views

Tensor = torch.Tensor


def uniformity(x: Tensor, t: float = 2.0) -> Tensor:
    """``log mean_{i != j} exp(-t ||x_i - x_j||^2)`` of normalised rows (Wang and Isola 2020,
    eq. 5), by logsumexp.

    Example:
        >>> import torch
        >>> round(float(uniformity(torch.eye(3), t=2.0)), 4)  # every distance^2 is 2
        -4.0
    """
    x = F.normalize(x, dim=-1)
    n = len(x)
    squared = (2 - 2 * (x @ x.mT)).clamp(0.0, 4.0)
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    return torch.logsumexp((-t * squared).masked_fill(eye, -math.inf).flatten(), 0) - math.log(
        n * (n - 1)
    )


def align_uniform_loss(
    z1: Tensor, z2: Tensor, *, alpha: float = 2.0, t: float = 2.0, lam: float = 1.0
) -> Tensor:
    """Alignment + uniformity (Wang and Isola 2020, eq. 4-5, as in their reference code)::

        mean_i ||x_i - y_i||^alpha + lam * (uniformity(x, t) + uniformity(y, t)) / 2

    Example:
        >>> import torch
        >>> round(float(align_uniform_loss(torch.eye(3), torch.eye(3))), 4)
        -4.0
    """
    check_views(z1, z2, at_least=2)
    x, y = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    align = (x - y).norm(dim=-1).pow(alpha).mean()
    return align + lam * (uniformity(x, t) + uniformity(y, t)) / 2


class AlignUniform(nn.Module):
    """Alignment and uniformity on the hypersphere (Wang and Isola 2020), weights as their
    paper: ``alpha = 2``, ``t = 2``, ``lam = 1``. Not gathered across processes (the log of a
    mean does not split over processes); each process uses its own batch.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> loss_fn = fm.get_objective("align_uniform")
        >>> loss_fn(torch.randn(8, 4), torch.randn(8, 4)).shape
        torch.Size([])
    """

    def __init__(self, alpha: float = 2.0, t: float = 2.0, lam: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.t, self.lam = float(alpha), float(t), float(lam)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return align_uniform_loss(z1, z2, alpha=self.alpha, t=self.t, lam=self.lam)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}, t={self.t:g}, lam={self.lam:g}"
