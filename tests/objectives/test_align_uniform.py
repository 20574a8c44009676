"""Alignment + uniformity (Wang and Isola 2020, eq. 4-5), pinned to a loop over the pairs."""

from __future__ import annotations

import pytest
import torch
from loop_reference import align_uniform_reference

import fmicl_registry as fm
from fmicl_registry.objectives import align_uniform_loss


def _views(n: int = 7, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z1, z1 + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("alpha,t,lam", [(2.0, 2.0, 1.0), (1.0, 3.0, 0.5)])
def test_align_uniform_is_wang_and_isola(alpha: float, t: float, lam: float) -> None:
    z1, z2 = _views()
    objective = fm.get_objective("align_uniform", alpha=alpha, t=t, lam=lam)
    want = align_uniform_reference(z1, z2, alpha, t, lam)
    assert abs(float(objective(z1, z2)) - want) <= 1e-9
    assert abs(float(align_uniform_loss(z1, z2, alpha=alpha, t=t, lam=lam)) - want) <= 1e-9


def test_gradients_match_finite_differences() -> None:
    z1, z2 = _views(5)
    objective = fm.get_objective("align_uniform")
    assert torch.autograd.gradcheck(objective, (z1.requires_grad_(), z2.requires_grad_()))


def test_finite_in_low_precision() -> None:
    z1, _ = _views(16, 8)
    for dtype in (torch.float32, torch.bfloat16):
        a = z1.to(dtype).requires_grad_()
        loss = fm.get_objective("align_uniform")(a, a.detach())
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(a.grad).all(), dtype
