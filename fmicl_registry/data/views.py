"""Wrappers that apply a transform to a data set's images: two views, or one.

Both forward the data set's attributes (``num_classes``, ``input_shape``, ``mean``, ``std``,
``default_recipe``, ``name``, ...), so code that receives the wrapper can still read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

_Item = tuple[torch.Tensor, int]


class _Wrapper:
    """Forwards attribute reads it does not answer to the wrapped data set."""

    dataset: Dataset[_Item]
    transform: Callable[[torch.Tensor], torch.Tensor]

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found normally; guard the fields themselves so that
        # unpickling (DataLoader workers) does not recurse before they are set.
        if name in ("dataset", "transform") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


class TwoViews(_Wrapper, Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """``(transform(x), transform(x), label)``: two independent random views of each image,
    the positive pair of contrastive pretraining (Lu et al. 2023).

    Example:
        >>> import torch
        >>> from fmicl_registry.data import TwoViews, digits, train_transform
        >>> ds = digits()
        >>> pairs = TwoViews(ds, train_transform(ds))
        >>> _ = torch.manual_seed(0)
        >>> v1, v2, label = pairs[0]
        >>> v1.shape, bool((v1 != v2).any()), pairs.num_classes
        (torch.Size([1, 8, 8]), True, 10)
    """

    def __init__(
        self, dataset: Dataset[_Item], transform: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        self.dataset = dataset
        self.transform = transform

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, label = self.dataset[index]
        return self.transform(image), self.transform(image), label

    def __repr__(self) -> str:
        return f"TwoViews({self.dataset!r})"


class Transformed(_Wrapper, Dataset[tuple[torch.Tensor, int]]):
    """``(transform(x), label)``: one transformed image per item (evaluation, linear probes).

    Example:
        >>> from fmicl_registry.data import Transformed, digits, eval_transform
        >>> ds = digits(split="test")
        >>> x, label = Transformed(ds, eval_transform(ds))[0]
        >>> x.dtype, x.shape, len(Transformed(ds, eval_transform(ds)))
        (torch.float32, torch.Size([1, 8, 8]), 360)
    """

    def __init__(
        self, dataset: Dataset[_Item], transform: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        self.dataset = dataset
        self.transform = transform

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        return self.transform(image), label

    def __repr__(self) -> str:
        return f"Transformed({self.dataset!r})"
