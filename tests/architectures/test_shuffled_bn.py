"""Shuffled BN (He et al. 2020, section 3.3) on 2 processes (gloo): keys come back aligned with
their inputs, their BatchNorm statistics are those of the shuffled shard, and MoCo's queue
receives the keys of every process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn import functional as F

import fmicl_registry as fm
from fmicl_registry.architectures import MoCo, shuffled_forward
from fmicl_registry.backbones import SmallCNN

WORLD, N, D = 2, 4, 3
SEED = 3  # a permutation that moves rows between the two processes (asserted below)


def _data() -> tuple[torch.Tensor, nn.Module]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(WORLD * N, D, generator=g) * torch.arange(1, WORLD * N + 1)[:, None]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, D), nn.BatchNorm1d(D))
    with torch.no_grad():  # running statistics that are not the identity
        net(torch.randn(16, D, generator=g) * 3 + 1)
    return x, net


def _views() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(WORLD * N, 1, 8, 8, generator=g), torch.randn(
        WORLD * N, 1, 8, 8, generator=g
    )


class KeepKeys(nn.Module):
    """f-MICL, remembering the keys it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = fm.get_objective("fmicl", divergence="kl")
        self.keys: list[torch.Tensor] = []

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        self.keys.append(k.detach().clone())
        return self.inner(q, k, queue=queue)  # type: ignore[no-any-return]


def _moco() -> MoCo:
    torch.manual_seed(0)  # the same weights on every process
    net = SmallCNN((1, 8, 8), width=4, output_dim=8)
    return MoCo(net, KeepKeys(), queue_size=16, hidden_dim=8)


def _worker(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    rows = slice(rank * N, (rank + 1) * N)
    x, net = _data()
    results: dict[str, torch.Tensor] = {}
    # Eval first: train mode moves each process's running statistics its own way.
    results["eval"] = shuffled_forward(net.eval(), x[rows])
    with torch.no_grad():
        results["eval_plain"] = net(x[rows])
    g = torch.Generator().manual_seed(SEED)
    results["train"] = shuffled_forward(net.train(), x[rows], generator=g)
    model = _moco()
    v1, v2 = _views()
    model(v1[rows], v2[rows])
    results["queue"] = model.queue.keys.clone()  # type: ignore[union-attr]
    results["position"] = model.queue.position.clone()  # type: ignore[union-attr]
    results["keys"] = model.objective.keys[0]
    torch.save(results, f"{out}.{rank}")
    dist.destroy_process_group()


@pytest.mark.slow  # two fresh processes
def test_shuffled_bn_on_two_processes(tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = str(tmp_path / "results")
    mp.spawn(_worker, args=(str(tmp_path / "init"), out), nprocs=WORLD, join=True)
    got = [torch.load(f"{out}.{rank}") for rank in range(WORLD)]
    x, net = _data()

    # Eval mode (running statistics): shuffled and unshuffled agree row by row.
    for rank in range(WORLD):
        torch.testing.assert_close(got[rank]["eval"], got[rank]["eval_plain"], atol=1e-6, rtol=0)

    # Train mode: each row is normalised with the statistics of its shard of the shuffled
    # global batch, and comes back to the process and row it came from.
    perm = torch.randperm(WORLD * N, generator=torch.Generator().manual_seed(SEED))
    assert set(perm[:N].tolist()) != set(range(N))  # rows really move between processes
    net.train()
    with torch.no_grad():
        shuffled = torch.cat([net(x[perm[r * N : (r + 1) * N]]) for r in range(WORLD)])
        want = shuffled[torch.argsort(perm)]
        unshuffled = torch.cat([net(x[r * N : (r + 1) * N]) for r in range(WORLD)])
    gathered = torch.cat([got[r]["train"] for r in range(WORLD)])
    torch.testing.assert_close(gathered, want)
    assert not torch.allclose(gathered, unshuffled, atol=1e-3)

    # MoCo: every process enqueues the keys of the whole global batch, in rank order.
    torch.testing.assert_close(got[0]["queue"], got[1]["queue"])
    assert int(got[0]["position"]) == WORLD * N
    keys = torch.cat([got[r]["keys"] for r in range(WORLD)])
    torch.testing.assert_close(got[0]["queue"][: WORLD * N], F.normalize(keys, dim=-1))


def test_single_process_bn_splits_is_the_same_recipe() -> None:
    x, net = _data()
    g = torch.Generator().manual_seed(SEED)
    got = shuffled_forward(net.train(), x, splits=WORLD, generator=g)
    perm = torch.randperm(WORLD * N, generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        shuffled = torch.cat([net(x[perm[r * N : (r + 1) * N]]) for r in range(WORLD)])
    torch.testing.assert_close(got, shuffled[torch.argsort(perm)])
    with torch.no_grad():
        torch.testing.assert_close(shuffled_forward(net.eval(), x, splits=WORLD), net(x))
        assert torch.equal(shuffled_forward(net.train(), x), net(x))  # one process, one split
