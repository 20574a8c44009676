"""Pretraining and evaluation runs: specs, the training loop, checkpoints, reports and sweeps.

Example::

    from fmicl_registry.training import load_spec, train
    spec = load_spec(None, ["train.epochs=5", "objective.divergence=kl"])  # the digits default
    result = train(spec, out="runs")
    print(result.report["metrics"]["linear_top1"], result.run_dir)

The command line does the same: ``fmicl train --set train.epochs=5``, ``fmicl eval RUN_DIR``,
``fmicl sweep --divergences kl,js --baselines infonce``.
"""

from __future__ import annotations

from .checkpoint import CheckpointError
from .loop import RunResult, TrainingDiverged, evaluate_checkpoint, train
from .optim import LARS, warmup_cosine
from .spec import Spec, SpecError, load_spec
from .sweep import sweep

__all__ = [
    "LARS",
    "CheckpointError",
    "RunResult",
    "Spec",
    "SpecError",
    "TrainingDiverged",
    "evaluate_checkpoint",
    "load_spec",
    "sweep",
    "train",
    "warmup_cosine",
]
