"""The schedule and LARS against their formulas written out by hand."""

from __future__ import annotations

import math

import torch

from fmicl_registry.training import LARS, warmup_cosine


def test_warmup_then_cosine_to_zero() -> None:
    values = [warmup_cosine(s, warmup_steps=4, total_steps=14) for s in range(15)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    for s in range(4, 15):
        assert math.isclose(values[s], 0.5 * (1 + math.cos(math.pi * (s - 4) / 10)))
    assert values[-1] == 0.0


def test_lars_matches_the_algorithm_written_out() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    opt = LARS([w, b], lr=0.5, momentum=0.9, weight_decay=0.01, eta=0.02)
    ref_w, ref_b = w.detach().clone(), b.detach().clone()
    mom_w = mom_b = None
    for _ in range(3):
        x = torch.randn(5, 4, dtype=torch.float64)
        opt.zero_grad()
        (x @ w.T + b).pow(2).sum().backward()
        rw, rb = ref_w.clone().requires_grad_(), ref_b.clone().requires_grad_()
        gw, gb = torch.autograd.grad((x @ rw.T + rb).pow(2).sum(), [rw, rb])
        uw = gw + 0.01 * ref_w
        uw = uw * (0.02 * ref_w.norm() / uw.norm())
        mom_w = uw if mom_w is None else 0.9 * mom_w + uw
        mom_b = gb if mom_b is None else 0.9 * mom_b + gb  # 1-D: plain SGD, no decay
        ref_w, ref_b = ref_w - 0.5 * mom_w, ref_b - 0.5 * mom_b
        opt.step()
        torch.testing.assert_close(w.detach(), ref_w)
        torch.testing.assert_close(b.detach(), ref_b)
