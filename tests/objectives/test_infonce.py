"""InfoNCE: NT-Xent (SimCLR) and MoCo's InfoNCE, each pinned to a loop over the pairs as the
papers write it."""

from __future__ import annotations

import pytest
import torch
from loop_reference import moco_reference, ntxent_reference

import fmicl_registry as fm
from fmicl_registry.objectives import infonce_loss, moco_infonce_loss


def _views(n: int = 7, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z1, z1 + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("temperature", [0.5, 0.1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_infonce_is_simclr_nt_xent(temperature: float, dtype: torch.dtype) -> None:
    z1, z2 = _views()
    want = ntxent_reference(z1, z2, temperature)
    got = fm.get_objective("infonce", temperature=temperature)(z1.to(dtype), z2.to(dtype))
    assert abs(float(got) - want) <= 1e-6 * max(1.0, abs(want))


def test_infonce_default_temperature_is_simclr_s() -> None:
    z1, z2 = _views()
    got = fm.get_objective("infonce")(z1, z2)
    assert abs(float(got) - ntxent_reference(z1, z2, 0.5)) <= 1e-9


def test_infonce_agrees_with_lightly_when_installed() -> None:
    loss = pytest.importorskip("lightly.loss")
    z1, z2 = _views(16, 8)
    torch.testing.assert_close(infonce_loss(z1, z2, 0.3), loss.NTXentLoss(temperature=0.3)(z1, z2))


@pytest.mark.parametrize("with_queue", [True, False])
def test_moco_infonce(with_queue: bool) -> None:
    q, k = _views()
    queue = torch.randn(11, 5, dtype=torch.float64) if with_queue else None
    objective = fm.get_objective(
        "moco_infonce", temperature=0.2, queue_size=11 if with_queue else 0
    )
    got = objective(q, k, queue=queue)
    assert abs(float(got) - moco_reference(q, k, queue, 0.2)) <= 1e-9
    assert abs(float(moco_infonce_loss(q, k, queue, 0.2)) - float(got)) <= 1e-12


def test_moco_stateful_queue_is_filled_with_keys() -> None:
    q, k = _views(4)
    objective = fm.get_objective("moco_infonce", queue_size=8)
    objective(q, k)
    objective(q, k)
    assert objective.queue is not None
    keys = objective.queue.keys
    unit = torch.nn.functional.normalize(k, dim=-1)
    torch.testing.assert_close(keys, torch.cat([unit, unit]).to(keys.dtype))
    want = moco_reference(q, k, keys, 0.2)
    assert abs(float(objective.eval()(q, k)) - want) <= 1e-6


@pytest.mark.parametrize("name", ["infonce", "moco_infonce"])
def test_gradients_match_finite_differences(name: str) -> None:
    z1, z2 = _views(5)
    options = {"queue_size": 0} if name == "moco_infonce" else {}
    objective = fm.get_objective(name, **options)
    assert torch.autograd.gradcheck(objective, (z1.requires_grad_(), z2.requires_grad_()))


def test_both_are_finite_in_low_precision() -> None:
    z1, _ = _views(16, 8)
    for name in ("infonce", "moco_infonce"):
        for dtype in (torch.float32, torch.bfloat16):
            a = z1.to(dtype).requires_grad_()
            loss = fm.get_objective(name)(a, a.detach())
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(a.grad).all(), (name, dtype)
