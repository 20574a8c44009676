"""The benchmark's critics score every pair of a batch as their definitions say."""

from __future__ import annotations

import pytest
import torch

from fmicl_registry.mi import CRITICS, ConcatCritic, SeparableCritic, build_critic


def _batch(b: int = 5, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


def test_separable_critic_is_a_dot_product_of_two_encoders() -> None:
    torch.manual_seed(0)
    critic = SeparableCritic(3, hidden=16, embed=4)
    x, y = _batch()
    scores = critic(x, y)
    assert scores.shape == (5, 5)
    want = torch.stack([torch.stack([critic.g(xi) @ critic.h(yj) for yj in y]) for xi in x])
    torch.testing.assert_close(scores, want)


def test_concat_critic_is_the_mlp_on_every_concatenated_pair() -> None:
    torch.manual_seed(0)
    critic = ConcatCritic(3, hidden=16, layers=2)
    x, y = _batch()
    scores = critic(x, y)
    want = torch.stack(
        [torch.stack([critic.net(torch.cat([xi, yj])).squeeze() for yj in y]) for xi in x]
    )
    torch.testing.assert_close(scores, want)
    # Gradients reach every parameter through the factorised first layer.
    scores.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())


def test_rectangular_batches_and_the_factory() -> None:
    x, y = torch.randn(4, 6), torch.randn(7, 6)
    for kind in CRITICS:
        critic = build_critic(kind, 6, hidden=8, layers=3, embed=2)
        assert critic(x, y).shape == (4, 7)
    # Poole et al.'s architecture by default: 2 hidden layers of 256, embedding 32.
    default = build_critic("separable", 20)
    assert isinstance(default, SeparableCritic)
    widths = [m.out_features for m in default.g if isinstance(m, torch.nn.Linear)]
    assert widths == [256, 256, 32]
    with pytest.raises(ValueError, match="no critic 'bilinear'"):
        build_critic("bilinear", 6)
