"""The NaN guard's words: what went bad in the objective, and what to do about it.

The loop checks the loss and the gradient norm of every step (:meth:`.loop._Loop.optimise`);
a non-finite one stops the run with :class:`~fmicl_registry.errors.TrainingDiverged`, naming
the step, the objective's terms at that step and the last good checkpoint.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import TrainingDiverged
from .run_folder import RunFolder


@runtime_checkable
class ReportsTerms(Protocol):
    """An objective that keeps the values of its terms at its last call (f-MICL's)."""

    last_terms: dict[str, torch.Tensor]


def describe_terms(objective: nn.Module) -> str:
    """The objective's terms at its last call, the non-finite ones first."""
    if not isinstance(objective, ReportsTerms) or not objective.last_terms:
        return "the objective gives no per-term values"
    values = {name: float(value) for name, value in objective.last_terms.items()}
    parts = [f"{name} = {value:.6g}" for name, value in values.items()]
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    return (f"non-finite: {', '.join(bad)}; " if bad else "") + ", ".join(parts)


def diverged(
    folder: RunFolder, *, step: int, epoch: int, what: str, terms: str
) -> TrainingDiverged:
    """The error that stops a run at ``step`` (counted from 1) because ``what`` went bad."""
    last = folder.last_checkpoint()
    kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
    return TrainingDiverged(
        f"training stopped at step {step} (epoch {epoch}): {what} ({terms}); {kept}. Lower "
        "train.lr, use train.precision = 'fp32', or a smaller gamma/alpha, and start the run "
        f"again (fmicl train {folder.spec_file} --set ...): a run resumes only with the spec "
        "it was trained with."
    )
