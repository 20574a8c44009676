"""Pretraining and evaluation runs: specs, the training loop, checkpoints, reports and sweeps.

Read in this order: ``spec.py`` (a checked TOML spec with typed sections; its keys are in
``schema.py``), ``run.py`` (``train``: a spec, a path or a bundled name, overrides, and
objects in place of names, ``objects.py``), ``build.py`` (spec -> data, views, model,
evaluation; ``resolve.py`` fills in every default), ``loop.py`` (``run_spec``: the loop;
``evaluate_checkpoint``), ``views.py`` (the two views of a batch), ``evaluate.py``
(the evaluation interface; ``evaluate_images.py``, ``evaluate_text.py``), ``run_folder.py``
(metrics, checkpoints and resume in a run folder; ``checkpoint.py``, ``checkpoint_file.py``,
``spec_changes.py``), ``optim.py``, ``batches.py``, ``device.py``, ``guard.py``, ``report.py``
and ``sweep.py``.

Example::

    from fmicl_registry.training import load_spec, train
    spec = load_spec(None, ["train.epochs=5", "objective.divergence=kl"])  # the digits default
    result = train(spec, out="runs")
    print(result.report["metrics"]["linear_top1"], result.run_dir)

The command line does the same: ``fmicl train --set train.epochs=5``, ``fmicl eval RUN_DIR``,
``fmicl sweep --divergences kl,js --baselines infonce``.
"""

from __future__ import annotations

from ..errors import CheckpointError, SpecError, TrainingDiverged
from .loop import RunResult, evaluate_checkpoint
from .optim import LARS, warmup_cosine
from .run import train
from .spec import Spec, load_spec
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
