"""The two views of a batch: what the loop feeds the model, ``v1, v2 = views(batch)``.

A run makes its views one of three ways, chosen when it is built (:func:`.build.build`):

* :class:`PairedViews`: the data set draws both views of each image (:class:`SeededViews`, in
  the data loader's workers); the loop moves them to the device.
* :class:`BatchViews`: the loader gives plain images and a batched recipe augments each batch
  on the device (``augment.batched = true`` for a recipe that has a batched form, the digits').
* :class:`SentenceViews`: a text run gives the same sentences twice; the model's dropout makes
  the two views differ (SimCSE).

Every view depends on ``(seed, epoch, index)`` only, not on the number of processes or workers
or a resume: see :mod:`.batches`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset

from .batches import mix_seed


class SeededViews(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Two augmented views of each item, drawn from a generator seeded by
    ``(seed, epoch, index)`` (call :meth:`set_epoch` before each epoch).

    Example:
        >>> import torch
        >>> base = [(torch.zeros(1, 2, 2), 0)]
        >>> views = SeededViews(base, lambda x: x + torch.rand(()), seed=0)
        >>> a1, b1, _ = views[0]; a2, b2, _ = views[0]
        >>> torch.equal(a1, a2), torch.equal(a1, b1)
        (True, False)
    """

    def __init__(self, dataset: Any, transform: Callable[[Any], Any], seed: int) -> None:
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, label = self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, self.epoch, int(index)))
            return self.transform(image), self.transform(image), label


class BatchAugmentation(Protocol):
    """A batched recipe (:func:`fmicl_registry.data.batch.get_batch_augmentation`): random
    parameters for the rows ``rows`` of a global batch of ``total`` images, drawn from
    ``generator``."""

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator, rows: slice, total: int
    ) -> torch.Tensor: ...


class Views(Protocol):
    """A loader batch -> the model's two views; :meth:`set_epoch` before each epoch, and the
    epoch's batches in order."""

    def set_epoch(self, epoch: int) -> None: ...

    def __call__(self, batch: Any) -> tuple[Any, Any]: ...


@dataclass
class PairedViews:
    """Batches of ``(view1, view2, label)`` drawn by :class:`SeededViews`, moved to ``device``."""

    dataset: SeededViews
    device: torch.device

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __call__(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = batch[0], batch[1]
        return first.to(self.device, non_blocking=True), second.to(self.device, non_blocking=True)


@dataclass
class BatchViews:
    """Batches of ``(image, label)`` augmented twice on ``device`` by a batched recipe.

    Batch ``index`` of an epoch draws from one generator seeded by ``(seed, epoch, index)``
    for the whole global batch of ``batch_size`` images; process ``rank`` keeps its rows, so
    the views do not depend on the number of processes.
    """

    augment: BatchAugmentation
    seed: int
    batch_size: int
    device: torch.device
    rank: int = 0
    epoch: int = 0
    index: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.index = epoch, 0

    def __call__(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch[0].to(self.device, non_blocking=True)
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, self.index))
        self.index += 1
        rows = slice(self.rank * len(images), (self.rank + 1) * len(images))
        first = self.augment(images, generator, rows, self.batch_size)
        return first, self.augment(images, generator, rows, self.batch_size)


@dataclass
class SentenceViews:
    """Batches of ``(sentences, label)``: the same list of sentences as both views."""

    def set_epoch(self, epoch: int) -> None:
        pass

    def __call__(self, batch: Any) -> tuple[list[str], list[str]]:
        sentences = list(batch[0])
        return sentences, sentences
