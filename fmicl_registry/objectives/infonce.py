"""InfoNCE, the KL-based objective that f-MICL generalises (Lu et al. 2023):

- :func:`infonce_loss`, :class:`InfoNCE`: NT-Xent exactly as SimCLR (Chen et al. 2020, eq. 1);
- :func:`moco_infonce_loss`, :class:`MoCoInfoNCE`: InfoNCE of queries against keys and a queue
  (He et al. 2020, eq. 1), or against the other keys of the batch (MoCo v3, Chen et al. 2021).

The functions are pure (no state, no communication) and L2-normalise their inputs; for
negatives gathered from several processes, pass the gathered projections as ``keys1``/``keys2``
(``keys``) and ``offset``, the index of this process's first row in them. The modules do that
under ``torch.distributed`` (``gather=True``) and hold the queue of keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_positive, check_views, gather
from .queue import KeyQueue, queue_for

Tensor = torch.Tensor


def infonce_loss(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.5,
    *,
    keys1: Tensor | None = None,
    keys2: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """NT-Xent, exactly as SimCLR (Chen et al. 2020, eq. 1 and Algorithm 1).

    The 2N views are anchors; each has its other view as positive and the 2N - 2 views of
    the other samples as negatives; cosine similarities over ``temperature``; the loss is
    the mean over the 2N anchors of ``-log softmax`` of the positive.

    Example:
        >>> import math, torch
        >>> z = torch.eye(4)  # identical views, orthogonal samples, temperature 0.5:
        >>> round(float(infonce_loss(z, z)), 4), round(-math.log(math.e**2 / (math.e**2 + 6)), 4)
        (0.5944, 0.5944)
    """
    check_views(z1, z2, at_least=2)
    temperature = check_positive("temperature", temperature)
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    keys = z if keys1 is None else F.normalize(torch.cat([keys1, keys2]), dim=-1)  # type: ignore[list-item]
    n, total = len(z1), len(keys) // 2
    logits = z @ keys.mT / temperature
    rows = torch.arange(2 * n, device=z.device)
    first = rows < n
    own = torch.where(first, offset + rows, total + offset + rows - n)
    other = torch.where(first, total + offset + rows, offset + rows - n)
    logits = logits.masked_fill(torch.arange(2 * total, device=z.device) == own[:, None], -math.inf)
    return F.cross_entropy(logits, other)


def moco_infonce_loss(
    q: Tensor,
    k: Tensor,
    queue: Tensor | None = None,
    temperature: float = 0.2,
    *,
    keys: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """InfoNCE of queries against keys (He et al. 2020, MoCo eq. 1).

    With a ``queue`` (``(K, D)``), MoCo v2: each query ``q_i`` has its key ``k_i`` as
    positive and the K queued keys as negatives. Without one, MoCo v3 (Chen et al. 2021):
    the other keys of the batch (``keys``: gathered from every process, ``q[0]``'s key at
    ``offset``) are the negatives. Keys are usually detached (momentum encoder).

    Example:
        >>> import math, torch
        >>> q = torch.eye(3)  # logits: 1 (positive), then -1, 0, 0 (queue)
        >>> round(float(moco_infonce_loss(q, q, queue=-q, temperature=1.0)), 4)
        0.6265
        >>> round(-math.log(math.e / (math.e + 1 / math.e + 2)), 4)
        0.6265
    """
    check_views(q, k, at_least=1 if queue is not None else 2)
    temperature = check_positive("temperature", temperature)
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    if queue is None:
        keys = k if keys is None else F.normalize(keys, dim=-1)
        labels = offset + torch.arange(len(q), device=q.device)
        return F.cross_entropy(q @ keys.mT / temperature, labels)
    negatives = q @ F.normalize(queue.to(q.dtype), dim=-1).mT
    logits = torch.cat([(q * k).sum(-1, keepdim=True), negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class InfoNCE(nn.Module):
    """NT-Xent as in SimCLR (Chen et al. 2020, eq. 1): 2N views, 2N - 2 negatives each.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> loss_fn = fm.get_objective("infonce", temperature=0.5)
        >>> float(loss_fn(torch.randn(8, 4), torch.randn(8, 4))) > 0
        True
    """

    def __init__(self, temperature: float = 0.5, gather: bool = True) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.gather = gather

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        keys1, offset = gather(z1, self.gather)
        keys2, _ = gather(z2, self.gather)
        return infonce_loss(z1, z2, self.temperature, keys1=keys1, keys2=keys2, offset=offset)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"


class MoCoInfoNCE(nn.Module):
    """InfoNCE of queries ``z1`` against keys ``z2`` and a queue (MoCo v2, He et al. 2020).

    ``queue_size=0`` gives MoCo v3's form: the other keys of the (gathered) batch are the
    negatives. The queue is filled with the keys of each training step (gathered across
    processes), after the loss is computed.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> loss_fn = fm.get_objective("moco_infonce", queue_size=1024, temperature=0.2)
        >>> float(loss_fn(torch.randn(8, 4), torch.randn(8, 4))) > 0
        True
    """

    def __init__(
        self, temperature: float = 0.2, queue_size: int = 65536, gather: bool = True
    ) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.gather = gather
        self.queue = KeyQueue(queue_size) if queue_size else None

    def forward(self, z1: Tensor, z2: Tensor, queue: Tensor | None = None) -> Tensor:
        keys, offset = gather(z2, self.gather)
        queue, own = queue_for(self.queue, queue, z2)
        loss = moco_infonce_loss(z1, z2, queue, self.temperature, keys=keys, offset=offset)
        if own is not None and self.training:
            own.push(keys.detach())
        return loss

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"
