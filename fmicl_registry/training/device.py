"""Where a run computes: its device, bfloat16 autocast, and the processes of a multi-process run.

Multi-process training runs under ``torchrun`` (gloo on CPU, nccl on GPU): every process takes
a contiguous slice of each global batch (:mod:`.batches`), the objectives gather negatives
across processes, and DDP averages the gradients, so two processes follow the one-process run
on the global batch.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..errors import SpecError


def resolve_device(name: str) -> torch.device:
    """``run.device``: ``"auto"`` is CUDA when there is one; a process of a multi-process run
    takes the GPU of its ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SpecError("run.device = 'cuda' but no CUDA device is available; use 'auto'")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if name != "cpu":
        raise SpecError(f"run.device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device("cpu")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """``train.precision``: ``"auto"`` is bfloat16 autocast on GPU, float32 on CPU."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise SpecError(f"train.precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    return contextlib.nullcontext()


def init_distributed(device: torch.device) -> None:
    """Join the process group ``torchrun`` describes (no-op in a single process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        distributed.join(backend)


def global_mean(x: torch.Tensor) -> float:
    """The mean of ``x`` over the processes (``x`` itself in a single process)."""
    if distributed.is_initialized():
        x = x.clone()
        torch.distributed.all_reduce(x)
        x /= distributed.world_size()
    return float(x)


def wrap(model: nn.Module, device: torch.device, *, compile: bool) -> nn.Module:
    """``model`` as the loop calls it: under DDP in a multi-process run, then compiled when
    ``train.compile``."""
    if distributed.world_size() > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return torch.compile(model) if compile else model  # type: ignore[return-value]
