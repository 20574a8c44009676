"""Evaluation: the test views are encoded once per pair."""

from __future__ import annotations

import torch

from fmicl_registry.training.evaluate_images import paired_features
from fmicl_registry.training.views import SeededViews

CPU = torch.device("cpu")


def test_pairs_encode_each_test_image_twice_from_one_draw_of_its_views() -> None:
    images = [(torch.rand(1, 8, 8), i % 3) for i in range(7)]
    calls = {"n": 0}

    def augment(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return x + torch.rand(())

    views = SeededViews(images, augment, seed=3)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    z1, z2 = paired_features(encoder, views, CPU, batch_size=3)
    assert calls["n"] == 2 * len(images)  # each view drawn once
    with torch.no_grad():
        want1 = torch.stack([encoder(views[i][0][None])[0] for i in range(7)])
        want2 = torch.stack([encoder(views[i][1][None])[0] for i in range(7)])
    torch.testing.assert_close(z1, want1)
    torch.testing.assert_close(z2, want2)
