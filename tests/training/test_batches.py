"""Batches depend on (seed, epoch) only, not on processes or order; the batched digits recipe."""

from __future__ import annotations

import math
from typing import Any

import torch

from fmicl_registry.data.batch import BatchDigits
from fmicl_registry.training.batches import EpochBatches


def test_two_ranks_together_hold_the_one_process_batch_in_rank_order() -> None:
    one = list(EpochBatches(100, batch_size=8, seed=3))
    ranks = [list(EpochBatches(100, batch_size=8, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(one) == 12  # the last partial batch is dropped
    for b, batch in enumerate(one):
        assert ranks[0][b] + ranks[1][b] == batch
    assert sorted(i for batch in one for i in batch) == sorted(set(i for b in one for i in b))


def test_epochs_reshuffle_and_repeat_exactly() -> None:
    sampler = EpochBatches(50, batch_size=10, seed=0)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first != second


class _Fixed(BatchDigits):
    """BatchDigits with chosen parameters, to compare the warp with exact references."""

    def __init__(self, **params: float) -> None:
        super().__init__((1, 8, 8), mean=(0.0,), std=(1.0,), jitter_p=0.0)
        self.fixed = params

    def parameters(self, n: int, generator: torch.Generator) -> dict[str, Any]:
        p = {
            "angle": 0.0, "shear": 0.0, "zoom": 1.0, "crop_x": 1.0, "crop_y": 1.0,
            "tx": 0.0, "ty": 0.0, "brightness": 1.0, "contrast": 1.0,
        } | self.fixed  # fmt: skip
        out = {k: torch.full((n,), float(v), dtype=torch.float64) for k, v in p.items()}
        out["jitter"] = torch.zeros(n, dtype=torch.bool)
        return out


def _image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[:, :, 0, :] = 0  # a blank border, so shifts by one pixel lose nothing
    x[:, :, -1, :] = 0
    x[:, :, :, 0] = 0
    x[:, :, :, -1] = 0
    return x


def test_identity_parameters_give_the_normalised_image() -> None:
    x = _image()
    out = _Fixed()(x, torch.Generator())
    torch.testing.assert_close(out, x.float() / 255, atol=1e-6, rtol=0)


def test_integer_translation_moves_pixels_exactly() -> None:
    x = _image()
    out = _Fixed(tx=1.0, ty=-1.0)(x, torch.Generator())
    expected = torch.zeros_like(x, dtype=torch.float32)
    expected[..., :-1, 1:] = x[..., 1:, :-1].float() / 255  # right by one, up by one
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_quarter_turn_equals_rot90() -> None:
    x = _image()
    out = _Fixed(angle=math.pi / 2)(x, torch.Generator())
    rotated = [torch.rot90(x.float() / 255, k, dims=(2, 3)) for k in (1, -1)]
    assert any(torch.allclose(out, r, atol=1e-5) for r in rotated)


def test_rows_of_the_global_batch_get_their_own_parameters() -> None:
    aug = BatchDigits((1, 8, 8), mean=(0.5,), std=(0.25,))
    x = _image().repeat(2, 1, 1, 1)  # 6 images
    full = aug(x, torch.Generator().manual_seed(5))
    parts = [
        aug(x[r * 3 : (r + 1) * 3], torch.Generator().manual_seed(5), slice(3 * r, 3 * r + 3), 6)
        for r in (0, 1)
    ]
    torch.testing.assert_close(torch.cat(parts), full)
    assert not torch.allclose(full[0], full[3])  # same image, different augmentation
