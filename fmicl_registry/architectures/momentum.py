"""Momentum (EMA) encoders and shuffled BatchNorm for their keys (He et al. 2020, MoCo).

Plain PyTorch: :func:`frozen_copy` makes the key encoder, :func:`ema_update` moves it towards
the query encoder, :func:`shuffled_forward` computes keys with the batch shuffled across
processes so that BatchNorm statistics cannot leak which key is a query's positive.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from .. import distributed

Tensor = torch.Tensor


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters have ``requires_grad=False``.

    The copy's parameters still appear in the owner's ``.parameters()``; give the optimizer
    only ``[p for p in model.parameters() if p.requires_grad]``.

    Example:
        >>> net = frozen_copy(torch.nn.Linear(2, 2))
        >>> any(p.requires_grad for p in net.parameters())
        False
    """
    twin = copy.deepcopy(module)
    twin.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * source``, parameter by parameter
    (MoCo, He et al. 2020, eq. 2). Buffers (BatchNorm statistics) are left alone: the target
    updates them in its own forward passes, as in MoCo's code.

    Example:
        >>> a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
        >>> ema_update(a, b, 0.0)  # momentum 0: a copy
        >>> bool(torch.equal(a.weight, b.weight))
        True
    """
    targets: list[Tensor] = list(target.parameters())
    sources: list[Tensor] = [p.detach() for p in source.parameters()]
    shapes = [p.shape for p in targets], [p.shape for p in sources]
    if shapes[0] != shapes[1]:
        raise ValueError("ema_update: the two modules do not have the same parameters")
    if targets:
        torch._foreach_mul_(targets, momentum)
        torch._foreach_add_(targets, sources, alpha=1.0 - momentum)


def split_forward(module: Callable[[Tensor], Tensor], x: Tensor, splits: int = 1) -> Tensor:
    """``module`` on ``splits`` consecutive chunks of ``x``, concatenated: BatchNorm in train
    mode then normalises each chunk with its own statistics, like ``splits`` processes would
    (MoCo's single-GPU "SplitBatchNorm").

    Example:
        >>> bn = torch.nn.BatchNorm1d(1, affine=False)
        >>> split_forward(bn, torch.tensor([[0.0], [2.0], [10.0], [12.0]]), 2).flatten()
        tensor([-1.0000,  1.0000, -1.0000,  1.0000])
    """
    if splits == 1:
        return module(x)
    return torch.cat([module(chunk) for chunk in x.tensor_split(splits)])


def _shared_permutation(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    if distributed.rank() == 0:
        perm = torch.randperm(n, generator=generator).to(device)
    else:
        perm = torch.empty(n, dtype=torch.long, device=device)
    if distributed.world_size() > 1:
        torch.distributed.broadcast(perm, src=0)
    return perm


@torch.no_grad()
def shuffled_forward(
    module: Callable[[Tensor], Tensor],
    x: Tensor,
    splits: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``module(x)`` without a graph, with "shuffled BN" (He et al. 2020, section 3.3).

    On ``W > 1`` processes (MoCo's ``_batch_shuffle_ddp``): gather ``x`` from every process,
    permute the ``W * N`` rows with a permutation drawn on rank 0 (with ``generator``) and
    broadcast, run ``module`` on this process's ``N`` rows of the shuffled batch, gather the
    outputs and undo the permutation. Row ``i`` of the result is the output for ``x[i]``, but
    BatchNorm statistics (train mode) come from a random subset of the global batch rather
    than from the rows whose queries sit on this process. Every process must pass the same
    number of rows (``drop_last=True``).

    ``splits > 1`` also runs the shard in ``splits`` chunks (:func:`split_forward`). In a
    single process with ``splits == 1`` this is just ``module(x)``: there is nothing to
    shuffle with; ``splits > 1`` then gives the single-process equivalent (the batch shuffled,
    then normalised in chunks, as MoCo's CIFAR demo does with SplitBatchNorm).

    Example:
        >>> net = torch.nn.Linear(3, 2)
        >>> x = torch.randn(8, 3)
        >>> bool(torch.allclose(shuffled_forward(net, x, splits=4), net(x)))
        True
    """
    world = distributed.world_size()
    if world == 1 and splits == 1:
        return module(x)
    everything = distributed.all_gather_detached(x)
    perm = _shared_permutation(len(everything), x.device, generator)
    mine = perm.view(world, -1)[distributed.rank()]
    out = distributed.all_gather_detached(split_forward(module, everything[mine], splits))
    back = torch.argsort(perm).view(world, -1)[distributed.rank()]
    return out[back]
