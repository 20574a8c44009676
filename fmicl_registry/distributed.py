"""Gathering across processes for contrastive losses (torch.distributed; gloo or nccl).

Every helper is a no-op in a single process (no process group initialised), so objectives call
them unconditionally.

The convention, the one SimCLR and MoCo use: each process computes the loss of its own anchors
against the negatives of every process (gathered with :func:`all_gather`, whose backward sends
each process the sum of the gradients that all processes computed for its rows). DDP then
averages parameter gradients over processes, which gives exactly the gradient of one process
on the whole batch, provided every process holds the same number of rows.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from .errors import DistributedError

Tensor = torch.Tensor


#: Seconds the processes of a run wait for each other to join (``FMICL_DIST_TIMEOUT``).
JOIN_SECONDS = 120.0


def join(backend: str) -> None:
    """Join the process group that ``torchrun``'s environment describes (``env://``), waiting
    at most ``$FMICL_DIST_TIMEOUT`` seconds (default :data:`JOIN_SECONDS`) for every process.

    torch's own rendezvous waits 30 minutes for a process that never starts; here the others
    stop with a :class:`DistributedError` that says how many joined and what to do. Collectives
    later keep torch's default timeout (an evaluation on one rank may take long).
    """
    raw = os.environ.get("FMICL_DIST_TIMEOUT", str(JOIN_SECONDS))
    try:
        seconds = float(raw)
    except ValueError:
        raise DistributedError(
            f"FMICL_DIST_TIMEOUT must be a number of seconds, got {raw!r}"
        ) from None
    world = os.environ.get("WORLD_SIZE", "?")
    rank = os.environ.get("RANK", "?")
    timeout = datetime.timedelta(seconds=seconds)
    try:
        store, rank_, world_ = next(dist.rendezvous("env://", timeout=timeout))
        store.set_timeout(timeout)
        dist.init_process_group(backend, store=store, rank=rank_, world_size=world_)
    except (RuntimeError, ValueError) as err:  # torch's DistStoreError is a RuntimeError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(
            f"process {rank} of {world}: the processes of this run did not all join within "
            f"{seconds:g} s ({first}); start every process (torchrun starts them all with the "
            "same MASTER_ADDR and MASTER_PORT), or wait longer with FMICL_DIST_TIMEOUT=SECONDS"
        ) from None


def is_initialized() -> bool:
    """Whether a process group is up (False where torch lacks distributed support)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    """This process's index (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]  # type: ignore[attr-defined]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        # Every process holds a gradient for every row; a row's owner gets their sum.
        # (all_reduce + slice rather than reduce_scatter: gloo has no reduce_scatter.)
        grad = grad.contiguous()
        dist.all_reduce(grad)
        rows: int = ctx.rows  # type: ignore[attr-defined]
        start = dist.get_rank() * rows
        return grad[start : start + rows]


def all_gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every process along dim 0, keeping the graph.

    Rows ``rank * len(x)`` to ``(rank + 1) * len(x)`` of the result are this process's ``x``;
    in the backward pass each process receives the gradient summed over all processes. Every
    process must pass the same shape (use ``drop_last=True`` in the data loader). Without a
    process group it returns ``x`` itself.

    Example:
        >>> import torch
        >>> from fmicl_registry.distributed import all_gather
        >>> x = torch.ones(4, 2)
        >>> all_gather(x) is x  # single process
        True
    """
    if world_size() == 1:
        return x
    return _AllGather.apply(x)


@torch.no_grad()
def all_gather_detached(x: Tensor) -> Tensor:
    """:func:`all_gather` without a graph (for queues of keys)."""
    if world_size() == 1:
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)
