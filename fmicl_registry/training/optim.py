"""Optimisers and the learning-rate schedule of the training loop.

SGD with momentum (SimCLR on CIFAR, the paper's setup), AdamW, and LARS (You et al. 2017, as
SimCLR and MoCo v3 use it for large batches). The schedule is a linear warm-up followed by a
cosine decay to zero (Loshchilov and Hutter 2017), stepped once per optimisation step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import SpecError
from .schema import TrainSection


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017, Algorithm 1).

    For every tensor with more than one dimension the update ``g + wd * p`` is scaled by
    ``eta * ||p|| / ||g + wd * p||``; biases and normalisation parameters (one dimension) get
    plain SGD without weight decay, as in SimCLR and MoCo v3.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(4, 2)
        >>> opt = LARS(layer.parameters(), lr=0.1, weight_decay=1e-6)
        >>> layer(torch.ones(1, 4)).sum().backward(); opt.step()
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
    ) -> None:
        super().__init__(
            params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta}
        )

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1:
                    update = update.add(p, alpha=group["weight_decay"])
                    p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    trust = torch.where(
                        (p_norm > 0) & (u_norm > 0), group["eta"] * p_norm / u_norm, 1.0
                    )
                    update = update.mul(trust)
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.clone(update).detach()
                else:
                    state["momentum"].mul_(group["momentum"]).add_(update)
                p.add_(state["momentum"], alpha=-group["lr"])


def build_optimizer(
    name: str, params: Sequence[Tensor], *, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimiser the spec names (``train.optimizer``)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise SpecError(f"train.optimizer must be 'sgd', 'adamw' or 'lars', got {name!r}")


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """The learning-rate factor at ``step``: linear warm-up to 1, then cosine to 0.

    Example:
        >>> [round(warmup_cosine(s, warmup_steps=2, total_steps=6), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class Schedule:
    """The run's learning-rate schedule: :func:`warmup_cosine` over its steps.

    ``total_steps`` is ``train.epochs`` epochs of ``steps_per_epoch`` steps, or
    ``train.max_steps`` when that is smaller; the warm-up is ``train.warmup_epochs`` epochs.
    """

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def of(cls, train: TrainSection, steps_per_epoch: int) -> Schedule:
        total = train.epochs * steps_per_epoch
        if train.max_steps:
            total = min(total, train.max_steps)
        return cls(steps_per_epoch, total, round(train.warmup_epochs * steps_per_epoch))

    def factor(self, step: int) -> float:
        return warmup_cosine(step, warmup_steps=self.warmup_steps, total_steps=self.total_steps)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """A scheduler stepping ``optimizer`` along this schedule, once per step."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.factor(step))

    def restart(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        step: int,
    ) -> None:
        """Set the learning rates of a resumed run to this schedule's at ``step``: the same
        as before, or, with more epochs, the cosine over the new total from this step on (a
        warm restart)."""
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base * self.factor(step)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
