"""Numerical stability of the f-MICL objective (kept apart, in the style of optax).

For every catalog divergence with the f-Gaussian similarity at the paper's two settings
(gamma = 1, alpha = 40 for vision; gamma = 20, alpha = 409600 for text; Lu et al. 2023):
losses and gradients are finite in float32 and bfloat16 on random unit vectors, identical
pairs and antipodal pairs, and float32 gradients are within 1e-4 relative of float64.

The one exception, documented here: Neyman chi^2 at gamma = 20. Its positive term is
f'(u) = 1 - u^-2 = 1 - exp(40 ||x - y||^2), beyond float32's largest number (exp(88.7)) as soon
as ||x - y||^2 > 2.2 (cosine below -0.1: common among random pairs; every antipodal pair); its
negative term 2 (exp(20 d^2) - 1) times alpha = 409600 overflows from d^2 > 3.8. No float32
implementation can be finite there. The library warns (OverflowRiskWarning) when the objective
first sees a float32 or bfloat16 batch; float64 stays finite.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from loop_reference import COSINE_OK, TEXTBOOK

import fmicl_registry as fm
from fmicl_registry.objectives import OverflowRiskWarning

SETTINGS = [(1.0, 40.0), (20.0, 409600.0)]  # (gamma, alpha) of the paper
CASES = ["random", "identical", "antipodal"]
OVERFLOWS = {("neyman", 20.0)}  # see the module docstring


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(
        torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1
    )


def _inputs(case: str, near: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x, noise = _unit(16, 8, 0), _unit(16, 8, 1)
    if case == "random":
        return x, noise
    y = x if case == "identical" else -x
    if near:  # off the exact critical point, where a gradient has a direction to compare
        y = torch.nn.functional.normalize(y + 0.05 * noise, dim=-1)
    return x, y


def _loss_and_grads(
    objective: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    z1, z2 = (v.to(dtype).clone().requires_grad_() for v in (x, y))
    loss = objective(z1, z2)
    loss.backward()
    return loss.detach(), torch.cat([z1.grad, z2.grad])  # type: ignore[list-item]


@pytest.mark.parametrize("gamma,alpha", SETTINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_losses_and_gradients_are_finite(
    catalog_name: str, gamma: float, alpha: float, dtype: torch.dtype
) -> None:
    objective = fm.get_objective("fmicl", divergence=catalog_name, gamma=gamma, alpha=alpha)
    overflows = (catalog_name, gamma) in OVERFLOWS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for case in CASES:
            loss, grads = _loss_and_grads(objective, *_inputs(case), dtype)
            if not overflows:
                assert torch.isfinite(loss), (case, loss)
                assert torch.isfinite(grads).all(), case
    risks = [w for w in caught if issubclass(w.category, OverflowRiskWarning)]
    if overflows:
        assert len(risks) == 1 and "exceeds the largest" in str(risks[0].message)
        assert "float64" in str(risks[0].message)
        assert not torch.isfinite(loss)  # genuinely beyond float32 (antipodal: exp(160))
    else:
        assert not risks


@pytest.mark.parametrize("gamma,alpha", SETTINGS)
def test_float32_gradients_match_float64(catalog_name: str, gamma: float, alpha: float) -> None:
    objective = fm.get_objective("fmicl", divergence=catalog_name, gamma=gamma, alpha=alpha)
    for case in CASES:
        for near in (False, True):
            x, y = _inputs(case, near)
            loss64, want = _loss_and_grads(objective, x, y, torch.float64)
            assert torch.isfinite(loss64) and torch.isfinite(want).all()
            if (catalog_name, gamma) in OVERFLOWS and case != "identical":
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OverflowRiskWarning)
                _, got = _loss_and_grads(objective, x, y, torch.float32)
            error = float((got.double() - want).norm() / want.norm())
            assert error <= 1e-4, (case, near, error)


@pytest.mark.parametrize("name", sorted(COSINE_OK))
def test_cosine_critic_is_finite_in_low_precision(name: str) -> None:
    assert name in TEXTBOOK
    objective = fm.get_objective("fmicl", divergence=name, similarity="cosine")
    for case in CASES:
        for dtype in (torch.float32, torch.bfloat16):
            loss, grads = _loss_and_grads(objective, *_inputs(case), dtype)
            assert torch.isfinite(loss) and torch.isfinite(grads).all(), (case, dtype)


def test_the_warning_names_the_term_and_the_remedy() -> None:
    objective = fm.get_objective("fmicl", divergence="neyman", gamma=20.0, alpha=409600.0)
    with pytest.warns(OverflowRiskWarning, match="positive term") as caught:
        objective(*(z.float() for z in _inputs("random")))
    assert "smaller gamma" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = objective(*_inputs("antipodal"))  # float64: no warning, finite
    assert torch.isfinite(loss)
