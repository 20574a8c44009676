"""A queue of keys, MoCo style: the extra negatives of ``MoCoInfoNCE`` and ``FMICL``
(``queue_size=``), and of the ``moco`` architecture, which holds its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..errors import ObjectiveError

Tensor = torch.Tensor


class KeyQueue(nn.Module):
    """A first-in first-out queue of ``size`` keys (MoCo, He et al. 2020, section 3.2).

    Allocated on first use with the keys' width, dtype and device, filled with random unit
    vectors as MoCo does; ``push`` replaces the oldest keys. Saved in the ``state_dict``.

    Example:
        >>> import torch
        >>> queue = KeyQueue(4)
        >>> queue.push(torch.ones(3, 2))
        >>> queue.read(torch.ones(1, 2)).shape
        torch.Size([4, 2])
    """

    keys: Tensor
    position: Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ObjectiveError(f"queue size must be an int >= 1, got {size!r}")
        self.size = size
        self.register_buffer("keys", torch.empty(size, 0))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    def _allocate(self, like: Tensor) -> None:
        if self.keys.shape[1] != like.shape[1]:
            keys = torch.randn(self.size, like.shape[1], dtype=like.dtype, device=like.device)
            if distributed.world_size() > 1:  # every process starts from the same negatives
                torch.distributed.broadcast(keys, src=0)
            self.keys = nn.functional.normalize(keys, dim=-1)
            self.position.zero_()

    def read(self, like: Tensor) -> Tensor:
        """A copy of the keys (``(size, D)``), allocated like ``like`` on first use."""
        self._allocate(like)
        return self.keys.clone()

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        """Enqueue ``keys`` (``(n, D)``, normalised here), dropping the oldest."""
        self._allocate(keys)
        keys = nn.functional.normalize(keys.detach(), dim=-1)[-self.size :]
        where = (self.position + torch.arange(len(keys), device=self.keys.device)) % self.size
        self.keys[where] = keys.to(self.keys.dtype)
        self.position.copy_((self.position + len(keys)) % self.size)

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        saved = state_dict.get(prefix + "keys")
        if saved is not None and len(saved) not in (0, self.size) and saved.shape[1] != 0:
            raise ObjectiveError(
                f"the saved queue holds {len(saved)} keys but this one holds {self.size}; "
                f"build the objective with queue_size={len(saved)} to resume it"
            )
        if saved is not None and saved.shape != self.keys.shape:
            self.keys = torch.empty_like(saved, device=self.keys.device)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def queue_for(
    own: KeyQueue | None, given: Tensor | None, like: Tensor
) -> tuple[Tensor | None, KeyQueue | None]:
    """The extra negatives of a step, and the module's queue when they come from it (it is
    then updated after the step); keys passed in explicitly leave the module's queue alone."""
    if given is not None or own is None:
        return given, None
    return own.read(like), own
