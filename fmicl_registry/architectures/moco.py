"""MoCo v2 (He et al. 2020; Chen, Fan, Girshick and He 2020) with any queue-aware objective."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from .. import distributed
from ..objectives import KeyQueue
from ._common import (
    ArchitectureError,
    accepts_queue,
    check_backbone,
    check_int,
    check_momentum,
    check_objective,
)
from .heads import MLPHead
from .momentum import ema_update, frozen_copy, shuffled_forward, split_forward

Tensor = torch.Tensor


class MoCo(nn.Module):
    """MoCo v2: a query encoder, a momentum key encoder and a queue of keys as negatives.

    Per training step (He et al. 2020, Algorithm 1):

    1. queries ``q = head(encoder(view1))``;
    2. without a graph: the key encoder moves towards the query encoder,
       ``k_param = m * k_param + (1 - m) * q_param`` (:func:`~.momentum.ema_update`), then the
       keys ``k = momentum_head(momentum_encoder(view2))`` are computed with shuffled BN
       (:func:`~.momentum.shuffled_forward`);
    3. ``loss = objective(q, k, queue=<the queue's keys>)``: the queued keys are extra
       negatives (``fm.get_objective("moco_infonce")`` is MoCo's InfoNCE;
       ``fm.get_objective("fmicl", ...)`` swaps in f-MICL, as in the paper);
    4. the keys, gathered from every process, are enqueued (first in, first out).

    In eval mode nothing moves: no momentum update, no enqueue; the loss is still computed.
    With ``symmetric=True`` both directions count, ``objective(q1, k2, queue) +
    objective(q2, k1, queue)``, and both views' keys are enqueued (MoCo's CIFAR demo).

    The architecture holds the queue, so the objective must take ``queue=``; with
    ``queue_size=0`` it calls ``objective(q, k)`` and the objective supplies its negatives
    (its own queue, say). The momentum encoder, head and queue are in the ``state_dict``, so a
    checkpoint resumes them; their parameters have ``requires_grad=False`` (they are in
    ``.parameters()``: give the optimizer only those that require grad).

    Shuffled BN: on several processes, the keys' BatchNorm statistics come from a random
    shard of the global batch (MoCo's ``_batch_shuffle_ddp``). In one process there is nothing
    to shuffle with and ``bn_splits=1`` (default) does nothing; ``bn_splits=S`` runs the
    queries in ``S`` chunks and the keys in ``S`` chunks of a shuffled batch, the single-GPU
    equivalent (SplitBatchNorm in MoCo's CIFAR demo). The default head has no BatchNorm, as
    MoCo v2's.

    Args:
        backbone: an ``nn.Module`` with an int ``output_dim`` (``self.encoder``).
        objective: ``objective(q, k, queue=keys)`` returns a scalar (``self.objective``).
        momentum: ``m`` of the key encoder (0.99 for small data sets; MoCo used 0.999 on
            ImageNet). ``self.momentum`` can be changed between steps (a schedule).
        queue_size: keys in the queue ``K`` (MoCo: 65536 on ImageNet, 4096 on CIFAR); 0: none.
        hidden_dim, out_dim, head_layers: the projection head (MoCo v2: 2048, 128, 2).
        symmetric: the symmetrised loss.
        shuffle_bn: compute keys with shuffled BN on several processes (or with ``bn_splits``).
        bn_splits: BatchNorm groups per process (see above).

    Example:
        >>> import torch, fmicl_registry as fm
        >>> from fmicl_registry.backbones import SmallCNN
        >>> objective = fm.get_objective("fmicl", divergence="kl")
        >>> model = MoCo(SmallCNN((1, 8, 8)), objective, queue_size=16)
        >>> loss = model(torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8))
        >>> loss.shape, int(model.queue.position)
        (torch.Size([]), 4)
    """

    default_backbone: ClassVar[str] = "resnet18"

    def __init__(
        self,
        backbone: nn.Module,
        objective: Any,
        momentum: float = 0.99,
        queue_size: int = 4096,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        head_layers: int = 2,
        symmetric: bool = False,
        shuffle_bn: bool = True,
        bn_splits: int = 1,
    ) -> None:
        super().__init__()
        features = check_backbone("moco", backbone)
        check_objective("moco", objective)
        self.momentum = check_momentum("moco", momentum)
        queue_size = check_int("moco", "queue_size", queue_size, minimum=0)
        for option, value in (
            ("hidden_dim", hidden_dim),
            ("out_dim", out_dim),
            ("head_layers", head_layers),
        ):
            check_int("moco", option, value)
        self.bn_splits = check_int("moco", "bn_splits", bn_splits)
        if queue_size and not accepts_queue(objective):
            raise ArchitectureError(
                f"architecture 'moco' passes its queue of keys to the objective as "
                f"objective(q, k, queue=keys), but {type(objective).__name__}.forward takes no "
                "queue parameter. Use an objective that does (fm.get_objective('fmicl', ...) "
                "or fm.get_objective('moco_infonce')), or build moco with queue_size=0 to call "
                "objective(q, k) with the objective's own negatives."
            )
        self.symmetric = bool(symmetric)
        self.shuffle_bn = bool(shuffle_bn)
        self.encoder = backbone
        self.head = MLPHead(features, hidden_dim, out_dim, num_layers=head_layers, batch_norm=False)
        self.momentum_encoder = frozen_copy(backbone)
        self.momentum_head = frozen_copy(self.head)
        self.objective = objective
        self.queue = KeyQueue(queue_size) if queue_size else None
        if self.queue is not None:  # allocated now, so the state dict has its final shape
            self.queue.read(torch.empty(0, out_dim))

    @torch.no_grad()
    def momentum_update(self) -> None:
        """One EMA step of the key encoder and head towards the query ones (done by
        ``forward`` in train mode)."""
        ema_update(self.momentum_encoder, self.encoder, self.momentum)
        ema_update(self.momentum_head, self.head, self.momentum)

    def _key_network(self, x: Tensor) -> Tensor:
        return self.momentum_head(self.momentum_encoder(x))

    def queries(self, x: Tensor) -> Tensor:
        """``head(encoder(x))``, in ``bn_splits`` chunks."""
        splits = self.bn_splits if self.shuffle_bn else 1
        return self.head(split_forward(self.encoder, x, splits))

    @torch.no_grad()
    def keys(self, x: Tensor) -> Tensor:
        """The momentum encoder's keys of ``x``, with shuffled BN when ``shuffle_bn``."""
        if not self.shuffle_bn:
            return self._key_network(x)
        return shuffled_forward(self._key_network, x, splits=self.bn_splits)

    def _loss(self, q: Tensor, k: Tensor, negatives: Tensor | None) -> Tensor:
        if negatives is None:
            return self.objective(q, k)
        return self.objective(q, k, queue=negatives)

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        """The loss of a batch of pairs (queries from ``view1``, keys from ``view2``)."""
        q1 = self.queries(view1)
        q2 = self.queries(view2) if self.symmetric else None
        with torch.no_grad():
            if self.training:
                self.momentum_update()
            k2 = self.keys(view2)
            k1 = self.keys(view1) if self.symmetric else None
        negatives = self.queue.read(q1) if self.queue is not None else None
        loss = self._loss(q1, k2, negatives)
        if q2 is not None and k1 is not None:
            loss = loss + self._loss(q2, k1, negatives)
        if self.training and self.queue is not None:
            new = k2 if k1 is None else torch.cat([k1, k2])
            self.queue.push(distributed.all_gather_detached(new))
        return loss

    def extra_repr(self) -> str:
        return (
            f"momentum={self.momentum:g}, symmetric={self.symmetric}, "
            f"shuffle_bn={self.shuffle_bn}, bn_splits={self.bn_splits}"
        )
