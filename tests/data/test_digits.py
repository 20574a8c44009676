"""digits: scikit-learn's 8x8 digits, embedded, with a fixed stratified split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from fmicl_registry.data import DatasetError, ImageDataset, digits


def _images(ds: ImageDataset) -> torch.Tensor:
    assert isinstance(ds.images, torch.Tensor)  # digits is held in memory
    return ds.images


def test_split_sizes_and_stratification() -> None:
    train, test = digits(split="train"), digits(split="test")
    assert (len(train), len(test)) == (1437, 360)
    train_counts = np.bincount(train.labels.numpy(), minlength=10)
    test_counts = np.bincount(test.labels.numpy(), minlength=10)
    total = train_counts + test_counts
    # each class is split about 80/20 (stratified): within one image of its share
    assert np.all(np.abs(test_counts - 0.2 * total) <= 1), test_counts


def test_split_is_fixed_across_calls() -> None:
    first, second = digits(split="test"), digits(split="test")
    assert torch.equal(_images(first), _images(second))
    assert torch.equal(first.labels, second.labels)
    assert torch.equal(_images(digits(split="pretrain")), _images(digits(split="train")))


def test_pixels_are_the_sklearn_values_scaled_to_uint8() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    original = Counter(
        (int(y), bytes(x.astype(np.uint8))) for x, y in zip(bunch.data, bunch.target, strict=True)
    )
    ours: Counter[tuple[int, bytes]] = Counter()
    for split in ("train", "test"):
        ds = digits(split=split)
        back = torch.round(_images(ds).double() * 16 / 255).to(torch.uint8)  # documented inverse
        for image, label in zip(back, ds.labels.tolist(), strict=True):
            ours[(label, bytes(image.reshape(-1).numpy()))] += 1
    assert ours == original  # no image lost, duplicated, transposed or relabelled
    image, _ = digits()[0]
    assert image.dtype == torch.uint8 and image.shape == (1, 8, 8)
    assert int(_images(digits()).max()) == 255 and int(_images(digits()).min()) == 0


def test_images_are_upright() -> None:
    """Rows are rows: sklearn's ``images[i]`` (8x8) is what comes back, scaled."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    image, label = digits(split="train")[0]
    matches = [
        i
        for i in range(len(bunch.target))
        if bunch.target[i] == label
        and np.array_equal(np.rint(bunch.images[i] * 255 / 16).astype(np.uint8), image[0].numpy())
    ]
    assert matches


def test_attributes() -> None:
    ds = digits()
    assert ds.name == "digits" and ds.num_classes == 10 and ds.input_shape == (1, 8, 8)
    assert ds.default_recipe == "digits"
    pixels = _images(ds).double() / 255
    assert ds.mean == pytest.approx((float(pixels.mean()),))
    assert ds.std == pytest.approx((float(pixels.std()),))
    assert digits(split="test").mean == ds.mean  # one normalisation for both splits
    assert ds.classes == [str(d) for d in range(10)]


def test_root_and_download_are_accepted_and_ignored(tmp_path: Path) -> None:
    ds = digits(root=tmp_path / "absent", split="test", download=True)
    assert len(ds) == 360
    assert not (tmp_path / "absent").exists()


def test_unknown_split_lists_the_splits() -> None:
    with pytest.raises(DatasetError, match=r"no split 'val'.*'train', 'test', 'pretrain'"):
        digits(split="val")


def test_subset_keeps_the_attributes() -> None:
    ds = digits(split="test")
    small = ds.subset([0, 5, 7])
    assert len(small) == 3 and small.num_classes == 10 and small.mean == ds.mean
    assert torch.equal(small[1][0], ds[5][0]) and small[2][1] == ds[7][1]
