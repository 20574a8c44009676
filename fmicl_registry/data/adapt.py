"""Any map-style data set of images as an :class:`~fmicl_registry.data.base.ImageDataset`.

``fm.train(dataset=...)`` takes the user's own data set object: a torchvision data set
(``CIFAR10(root)``: PIL images and ``targets``), a ``TensorDataset``, or any object with
``__len__`` and ``__getitem__`` whose items are an image or ``(image, label)``. An image is a
PIL image, a ``uint8`` tensor ``(C, H, W)``, or a float tensor ``(C, H, W)`` in ``[0, 1]``;
every image must have the same shape (resize in the data set, or use the ``images`` data set
for a folder of files of any size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .base import DatasetError, ImageDataset

#: Items read to estimate the per-channel mean and std of a data set that does not give them.
STATS_SAMPLE = 512


def as_image_dataset(data: Any, name: str = "python") -> ImageDataset:
    """``data`` as an :class:`ImageDataset`: itself if it is one, else a view of its items.

    Labels come from ``data.targets`` or ``data.labels`` when it has them, else from the items
    (``(image, label)``; read once, here); a data set of bare images is unlabelled (``-1``).
    ``mean`` and ``std`` come from ``data.mean``/``data.std`` when it has them, else they are
    measured on up to :data:`STATS_SAMPLE` evenly spaced images.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from fmicl_registry.data.adapt import as_image_dataset
        >>> x = torch.rand(6, 3, 4, 4)
        >>> ds = as_image_dataset(TensorDataset(x, torch.tensor([0, 1, 0, 1, 2, 2])))
        >>> ds.input_shape, ds.num_classes, ds[0][0].dtype, len(ds)
        ((3, 4, 4), 3, torch.uint8, 6)
    """
    if isinstance(data, ImageDataset):
        return data
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise DatasetError(
            f"a data set object needs __len__ and __getitem__ (a map-style torch Dataset), "
            f"got {type(data).__name__}"
        )
    size = len(data)
    if size < 1:
        raise DatasetError(f"the data set {type(data).__name__} is empty")
    source = _Images(data)
    labels = _labels(data, size)
    shape = source.shape
    mean, std = _stats(data, source, size)
    known = [label for label in labels if label >= 0]
    return ImageDataset(
        name,
        source,
        labels,
        num_classes=max(known) + 1 if known else 0,
        mean=mean,
        std=std,
        input_shape=shape,
        default_recipe="simclr",
        split="pretrain",
        classes=getattr(data, "classes", None) if known else None,
    )


class _Images:
    """The images of a data set's items, as ``uint8`` tensors ``(C, H, W)``."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.shape: tuple[int, int, int] = tuple(self[0].shape)  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        item = self.data[index]
        image = item[0] if isinstance(item, tuple | list) else item
        tensor = _as_uint8(image, index)
        if hasattr(self, "shape") and tuple(tensor.shape) != self.shape:
            raise DatasetError(
                f"item {index} of the data set is an image of shape {tuple(tensor.shape)}, "
                f"but item 0's is {self.shape}: every image must have the same shape (resize "
                "them in the data set, or train on a folder with the 'images' data set)"
            )
        return tensor


def _as_uint8(image: Any, index: int) -> torch.Tensor:
    from PIL import Image

    if isinstance(image, Image.Image):
        from torchvision.transforms.v2.functional import pil_to_tensor

        rgb = image if image.mode in ("L", "RGB") else image.convert("RGB")
        return pil_to_tensor(rgb)
    if not isinstance(image, torch.Tensor):
        raise DatasetError(
            f"item {index} of the data set is a {type(image).__name__}; an image must be a PIL "
            "image or a tensor (C, H, W)"
        )
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise DatasetError(
            f"item {index} of the data set is a tensor of shape {tuple(image.shape)}; an image "
            "is (C, H, W)"
        )
    if image.dtype == torch.uint8:
        return image
    if image.is_floating_point():
        low, high = float(image.min()), float(image.max())
        if low < 0.0 or high > 1.0:
            raise DatasetError(
                f"item {index} of the data set is a float image with values in [{low:g}, "
                f"{high:g}]; a float image must be in [0, 1] (do not normalise it: the "
                "augmentation does, with the data set's mean and std)"
            )
        return (image * 255.0).round().to(torch.uint8)
    raise DatasetError(f"item {index} of the data set is a {image.dtype} tensor; use uint8")


def _labels(data: Any, size: int) -> list[int]:
    for attribute in ("targets", "labels"):
        given = getattr(data, attribute, None)
        if given is not None:
            labels = [int(label) for label in torch.as_tensor(given).reshape(-1).tolist()]
            if len(labels) != size:
                raise DatasetError(f"the data set has {size} items but {len(labels)} {attribute}")
            return labels
    first = data[0]
    if not isinstance(first, tuple | list) or len(first) < 2:
        return [-1] * size
    return [_label(data[i][1], i) for i in range(size)]


def _label(value: Any, index: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DatasetError(
            f"item {index} of the data set has the label {value!r}; a label must be an int"
        ) from None


def _stats(data: Any, source: _Images, size: int) -> tuple[Sequence[float], Sequence[float]]:
    mean, std = getattr(data, "mean", None), getattr(data, "std", None)
    channels = source.shape[0]
    given = _per_channel(mean, channels), _per_channel(std, channels)
    if given[0] is not None and given[1] is not None:  # the data set's own statistics
        return given[0], given[1]
    picks = torch.linspace(0, size - 1, min(size, STATS_SAMPLE)).round().long().unique()
    sample = torch.stack([source[int(i)] for i in picks]).float() / 255.0
    pixels = sample.transpose(0, 1).reshape(channels, -1)
    return pixels.mean(dim=1).tolist(), pixels.std(dim=1).clamp_min(1e-3).tolist()


def _per_channel(value: Any, channels: int) -> tuple[float, ...] | None:
    """``value`` as one float per channel, or None when it is not that (a method named
    ``mean``, as a tensor has, is not a statistic)."""
    if not isinstance(value, Sequence | torch.Tensor) or isinstance(value, str):
        return None
    try:
        floats = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return floats if len(floats) == channels else None
