"""Bad input to the objectives: clear errors, never silent wrong numbers."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import fmicl_registry as fm
from fmicl_registry.objectives import ObjectiveError, align_uniform_loss, fmicl_loss, infonce_loss


class LearnableGamma:
    """A log-ratio similarity whose gamma is learnt (a tensor with requires_grad)."""

    kind = "log_ratio"

    def __init__(self) -> None:
        self.gamma = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)

    def value_range(self) -> tuple[float, float]:
        return (-4.0 * float(self.gamma), 0.0)

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
        return -self.gamma * (2 - 2 * a @ b.T)

    def paired(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
        return -self.gamma * (a - b).square().sum(-1)


def test_a_learning_similarity_gets_its_full_gradient() -> None:
    torch.manual_seed(0)
    z1, z2 = torch.randn(64, 8, dtype=torch.float64), torch.randn(64, 8, dtype=torch.float64)
    queue = torch.randn(20000, 8, dtype=torch.float64)  # 1.3M pairs: "auto" would chunk
    d = fm.get_divergence("js")
    grads = []
    for chunk_size in ("auto", None):
        sim = LearnableGamma()
        fmicl_loss(z1, z2, d, sim, queue=queue, chunk_size=chunk_size).backward()
        grads.append(float(sim.gamma.grad))
    assert grads[0] == pytest.approx(grads[1], rel=1e-9)
    with pytest.raises(ObjectiveError, match="chunk_size=None"):
        fmicl_loss(z1, z2, d, LearnableGamma(), chunk_size=8)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), "0.5"])
def test_temperature_must_be_positive(temperature: object) -> None:
    with pytest.raises(ObjectiveError, match="temperature"):
        infonce_loss(torch.randn(4, 3), torch.randn(4, 3), temperature=temperature)  # type: ignore[arg-type]


@pytest.mark.parametrize("alpha", [0.0, float("nan"), "40"])
def test_alpha_must_be_positive(alpha: object) -> None:
    with pytest.raises(ObjectiveError, match="alpha"):
        fm.get_objective("fmicl", divergence="kl", alpha=alpha)(
            torch.randn(4, 3), torch.randn(4, 3)
        )


def test_single_sample_batches_are_refused_where_there_are_no_negatives() -> None:
    one = torch.randn(1, 3)
    for loss in (infonce_loss, align_uniform_loss):
        with pytest.raises(ObjectiveError, match="at least 2"):
            loss(one, one)


def test_views_must_share_dtype() -> None:
    with pytest.raises(ObjectiveError, match="share dtype"):
        fm.get_objective("fmicl", divergence="kl", negatives="cross")(
            torch.randn(4, 3), torch.randn(4, 3, dtype=torch.float64)
        )


def test_objective_runs_on_the_meta_device() -> None:
    # Shapes only: catches hard-coded devices and device-specific calls.
    loss = fm.get_objective("fmicl", divergence="js")(
        torch.empty(8, 4, device="meta"), torch.empty(8, 4, device="meta")
    )
    assert loss.device.type == "meta" and loss.shape == ()


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_objectives_can_be_built_where_autograd_is_off(mode: Any) -> None:
    """Loading a model for inference builds its objective inside ``torch.no_grad()`` (or
    inference mode): building checks the terms' range with autograd, which must still work."""
    import fmicl_registry as fm

    with mode():
        for name in fm.registry().names("objectives"):
            fm.build("objectives", name)
        for divergence in ("kl", "js", "neyman", "tsallis"):
            objective = fm.FMICL(divergence=divergence)
            assert objective.alpha == 40.0
    z1, z2 = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4)
    objective(z1, z2).backward()  # built without autograd, it still trains
    assert z1.grad is not None and torch.isfinite(z1.grad).all()
