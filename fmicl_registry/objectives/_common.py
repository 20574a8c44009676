"""What the objectives share: checks of their inputs and options, and gathering across
processes. Private to ``objectives``."""

from __future__ import annotations

import math

import torch

from .. import distributed
from ..errors import ObjectiveError

Tensor = torch.Tensor


def check_views(z1: Tensor, z2: Tensor, *, at_least: int = 1) -> None:
    """Two views ``(N, D)`` of the same shape, dtype and device, ``N >= at_least``."""
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ObjectiveError(
            f"expected two views of shape (N, D), the same for both; got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if z1.dtype != z2.dtype or z1.device != z2.device:
        raise ObjectiveError(
            f"the two views must share dtype and device; got {z1.dtype} on {z1.device} and "
            f"{z2.dtype} on {z2.device}"
        )
    if len(z1) < at_least:
        raise ObjectiveError(
            f"this loss needs a batch of at least {at_least} samples (negatives come from the "
            f"other samples); got {len(z1)}"
        )


def check_positive(name: str, value: object) -> float:
    """``value`` as a float, refused unless a finite positive number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ObjectiveError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ObjectiveError(f"{name} must be finite, got {value!r}")
    return float(value)


def gather(z: Tensor, enabled: bool) -> tuple[Tensor, int]:
    """The rows of every process (``distributed.all_gather``, gradients flowing back) and the
    index of this process's first row in them; ``z`` and 0 when disabled or single-process."""
    if not enabled or distributed.world_size() == 1:
        return z, 0
    return distributed.all_gather(z), distributed.rank() * len(z)
