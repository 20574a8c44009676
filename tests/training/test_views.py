"""The two views of an image: the same for every order of access and global seed."""

from __future__ import annotations

import torch

from fmicl_registry.training.views import SeededViews


def test_seeded_views_do_not_depend_on_access_order_or_global_seed() -> None:
    base = [(torch.zeros(2), i) for i in range(4)]
    views = SeededViews(base, lambda x: x + torch.rand(2), seed=7)
    forward = [views[i] for i in range(4)]
    torch.manual_seed(123)
    backward = [views[i] for i in reversed(range(4))][::-1]
    for (a1, b1, _), (a2, b2, _) in zip(forward, backward, strict=True):
        assert torch.equal(a1, a2) and torch.equal(b1, b2) and not torch.equal(a1, b1)
    views.set_epoch(1)
    assert not torch.equal(views[0][0], forward[0][0])
