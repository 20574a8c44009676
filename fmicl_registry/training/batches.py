"""Batches that depend on ``(seed, epoch)`` only, and the seeds of every random draw.

Neither the number of processes, nor the number of data-loader workers, nor a resume changes
which images form a batch or how they are augmented: the batch order comes from a permutation
seeded by ``(seed, epoch)``, and the two views of an image (or of a batch, :mod:`.views`) from a
generator seeded by ``(seed, epoch, index)``. That is what makes a resumed run equal an
uninterrupted one, and two processes equal one process on the global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from ..errors import SpecError


def mix_seed(*parts: int) -> int:
    """A 63-bit seed mixing ``parts`` (splitmix64-style, so nearby inputs give unrelated seeds)."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (part + 0x9E3779B97F4A7C15 + (x << 6) + (x >> 2))) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


class EpochBatches(Sampler[list[int]]):
    """This process's share of each global batch of an epoch.

    The epoch's permutation is seeded by ``(seed, epoch)``; global batch ``b`` is rows
    ``b * batch_size`` to ``(b + 1) * batch_size`` of it (the last partial batch is dropped:
    contrastive losses want full batches), and process ``rank`` takes the ``rank``-th
    contiguous slice, so gathering the slices in rank order rebuilds the global batch.

    Example:
        >>> list(EpochBatches(6, batch_size=4, seed=0, rank=1, world_size=2))  # doctest: +SKIP
        [[5, 0]]
    """

    def __init__(
        self, size: int, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size % world_size:
            raise SpecError(
                f"train.batch_size ({batch_size}) must be divisible by the number of processes "
                f"({world_size})"
            )
        if size < batch_size:
            raise SpecError(
                f"the data set has {size} items, fewer than train.batch_size ({batch_size}); "
                "lower train.batch_size"
            )
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.epoch, self.skip = rank, world_size, 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Start ``epoch``, skipping its first ``skip`` batches."""
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.size // self.batch_size - self.skip

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, 0x5EED))
        order = torch.randperm(self.size, generator=generator).tolist()
        share = self.batch_size // self.world_size
        for b in range(self.skip, self.size // self.batch_size):
            start = b * self.batch_size + self.rank * share
            yield order[start : start + share]
