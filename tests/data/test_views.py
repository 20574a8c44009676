"""TwoViews and Transformed: the positive pairs of pretraining, reproducible under a seed."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from fmicl_registry.data import Transformed, TwoViews, digits, eval_transform, train_transform


@pytest.fixture(scope="module")
def pairs() -> TwoViews:
    ds = digits(split="test")
    return TwoViews(ds, train_transform(ds))


def test_two_views_differ_and_keep_the_label(pairs: TwoViews) -> None:
    torch.manual_seed(0)
    different = 0
    for i in range(20):
        v1, v2, label = pairs[i]
        assert v1.shape == v2.shape == (1, 8, 8) and v1.dtype == torch.float32
        assert label == pairs.dataset[i][1]
        different += not torch.equal(v1, v2)
    assert different >= 18


def test_views_are_reproducible_under_a_seed(pairs: TwoViews) -> None:
    def epoch() -> list[torch.Tensor]:
        torch.manual_seed(1234)
        loader = DataLoader(pairs, batch_size=64, shuffle=True, num_workers=0)
        return [torch.cat([v1, v2]) for v1, v2, _ in loader]

    first, second = epoch(), epoch()
    assert len(first) == len(second) == 6
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    torch.manual_seed(4321)
    other = next(iter(DataLoader(pairs, batch_size=64, shuffle=True)))
    assert not torch.equal(torch.cat(other[:2]), first[0])


@pytest.mark.slow
def test_views_are_reproducible_with_workers(pairs: TwoViews) -> None:
    """Workers are seeded from the main process's generator: same seed, same batches."""

    def batch() -> torch.Tensor:
        torch.manual_seed(7)
        loader = DataLoader(pairs, batch_size=32, num_workers=2)
        return torch.cat([torch.cat([v1, v2]) for v1, v2, _ in loader][:4])

    assert torch.equal(batch(), batch())


def test_wrappers_forward_the_dataset_attributes(pairs: TwoViews) -> None:
    ds = digits(split="test")
    for wrapped in (pairs, Transformed(ds, eval_transform(ds))):
        assert len(wrapped) == 360
        assert wrapped.num_classes == 10 and wrapped.input_shape == (1, 8, 8)
        assert wrapped.mean == ds.mean and wrapped.std == ds.std
        assert wrapped.name == "digits" and wrapped.default_recipe == "digits"
    with pytest.raises(AttributeError):
        _ = pairs.no_such_attribute


def test_transformed_applies_the_transform_once() -> None:
    ds = digits(split="test")
    transform = eval_transform(ds)
    x, label = Transformed(ds, transform)[3]
    assert torch.equal(x, transform(ds[3][0])) and label == ds[3][1]


def test_wrappers_survive_pickling(pairs: TwoViews) -> None:
    """DataLoader workers started with 'spawn' receive the data set pickled."""
    copy = pickle.loads(pickle.dumps(pairs))
    assert len(copy) == 360 and copy.num_classes == 10
    torch.manual_seed(5)
    a = pairs[0]
    torch.manual_seed(5)
    b = copy[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
