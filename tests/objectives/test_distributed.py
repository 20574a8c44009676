"""Gathered negatives across 2 processes (gloo) give the gradients of 1 process on the whole
batch: each process computes its anchors' loss against everyone's negatives, then parameter
gradients are averaged as DDP does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fmicl_registry as fm

WORLD, N, D_IN, D = 2, 6, 5, 4
CASES: dict[str, dict[str, Any]] = {
    "fmicl_view1": {"name": "fmicl", "divergence": "js", "alpha": 3.0},
    "fmicl_simclr": {"name": "fmicl", "divergence": "kl", "negatives": "simclr", "chunk_size": 2},
    "fmicl_both_queue": {"name": "fmicl", "divergence": "pearson", "negatives": "both", "queue": 1},
    "infonce": {"name": "infonce", "temperature": 0.5},
    "moco_v3": {"name": "moco_infonce", "queue_size": 0},
}


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.nn.Linear]:
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(WORLD * N, D_IN, generator=g, dtype=torch.float64)
    x2 = x1 + 0.3 * torch.randn(WORLD * N, D_IN, generator=g, dtype=torch.float64)
    queue = torch.randn(9, D, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    return x1, x2, queue, torch.nn.Linear(D_IN, D, dtype=torch.float64)


def _loss_and_grads(case: dict[str, Any], rows: slice) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x1, x2, queue, net = _data()
    options = {k: v for k, v in case.items() if k not in ("name", "queue")}
    objective = fm.get_objective(case["name"], **options)
    extra = {"queue": queue} if case.get("queue") else {}
    loss = objective(net(x1[rows]), net(x2[rows]), **extra)
    loss.backward()
    return loss.detach(), [p.grad for p in net.parameters()]  # type: ignore[misc]


def _worker(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    results = {}
    for key, case in CASES.items():
        loss, grads = _loss_and_grads(case, slice(rank * N, (rank + 1) * N))
        dist.all_reduce(loss)
        for g in grads:
            dist.all_reduce(g)  # DDP: the average over processes
        results[key] = (loss / WORLD, [g / WORLD for g in grads])
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


def test_gathered_negatives_give_the_single_process_gradients(tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path / "results.pt"
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out)), nprocs=WORLD, join=True)
    results = torch.load(out)
    for key, case in CASES.items():
        loss, grads = _loss_and_grads(case, slice(None))
        got_loss, got_grads = results[key]
        torch.testing.assert_close(got_loss, loss, rtol=1e-10, atol=1e-12, msg=key)
        for got, want in zip(got_grads, grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=key)
