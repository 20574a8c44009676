"""``digits``: the 8x8 handwritten digits scikit-learn ships (the embedded default data set).

1797 grayscale images of the digits 0-9 (UCI "optical recognition of handwritten digits"),
nothing to download. Pixel values ``0..16`` are mapped to ``uint8`` by ``round(v * 255 / 16)``
(so ``0 -> 0``, ``16 -> 255``; the original value is ``round(p * 16 / 255)``).

The split is fixed: ``train_test_split(test_size=0.2, stratify=y, random_state=0)`` of
scikit-learn, 1437 training and 360 test images, each class in the same proportion in both;
the same on every call and machine. ``pretrain`` is the training split.
"""

from __future__ import annotations

import functools
import os

import torch

from .base import DatasetError, ImageDataset, check_split

#: The fraction of images in the test split, and the seed of the stratified split.
TEST_SIZE = 0.2
SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _arrays() -> dict[str, torch.Tensor]:
    """The images and labels of both splits and the training statistics (loaded once)."""
    try:
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise DatasetError(
            f"data set 'digits' needs scikit-learn, which is not installed ({err}); install "
            "it with `pip install 'fmicl-registry[digits]'`"
        ) from None
    bunch = load_digits()
    values = np.asarray(bunch.data, dtype=np.float64).reshape(-1, 1, 8, 8)
    images = torch.from_numpy(np.rint(values * 255.0 / 16.0).astype(np.uint8))
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=TEST_SIZE,
        stratify=bunch.target,
        random_state=SPLIT_SEED,
    )
    train = torch.as_tensor(np.sort(train_idx), dtype=torch.int64)
    test = torch.as_tensor(np.sort(test_idx), dtype=torch.int64)
    pixels = images[train].to(torch.float64) / 255.0
    return {
        "train_images": images[train].contiguous(),
        "train_labels": labels[train],
        "test_images": images[test].contiguous(),
        "test_labels": labels[test],
        "mean": pixels.mean().reshape(1),
        "std": pixels.std().reshape(1),
    }


def digits(
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    download: bool = False,
) -> ImageDataset:
    """The digits scikit-learn ships: ``uint8`` images ``(1, 8, 8)``, labels ``0..9``.

    ``root`` and ``download`` are accepted (every data set factory takes them) and ignored:
    the data comes with scikit-learn. ``mean``/``std`` are the pixel statistics of the
    training split, used for both splits. The default augmentation recipe is ``"digits"``.

    Example:
        >>> from fmicl_registry.data import digits
        >>> train, test = digits(split="train"), digits(split="test")
        >>> len(train), len(test), train.input_shape, train.num_classes
        (1437, 360, (1, 8, 8), 10)
        >>> image, label = test[0]
        >>> image.dtype, int(image.max()) <= 255, 0 <= label < 10
        (torch.uint8, True, True)
    """
    del root, download  # the data ships with scikit-learn
    split = check_split("digits", split)
    arrays = _arrays()
    part = "test" if split == "test" else "train"
    return ImageDataset(
        "digits",
        arrays[f"{part}_images"].clone(),
        arrays[f"{part}_labels"].clone(),
        num_classes=10,
        mean=(float(arrays["mean"][0]),),
        std=(float(arrays["std"][0]),),
        default_recipe="digits",
        split=split,
        classes=[str(d) for d in range(10)],
    )
