"""Evaluation of a trained encoder: one interface, an image and a text implementation.

An :class:`Evaluation` measures a curve point during training (every ``eval.every`` epochs)
and, at the end, every metric of the trained encoder beside its baselines (``eval.baselines``).
An image run is scored by kNN and linear probes on frozen features (:mod:`.evaluate_images`;
without labels, by alignment and uniformity alone), a text run by STS correlation
(:mod:`.evaluate_text`); both measure alignment and uniformity and the distance
distributions. :func:`evaluate_run` writes what they measured as the report.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .report import make_report, unreadable_line, write_report
from .spec import Spec


@dataclass
class Scores:
    """What an evaluation measured: the trained encoder's metrics, each baseline's, the
    distance distributions of positive and negative pairs (for the plots), and notes for the
    report (``probes_skipped``: why; ``unreadable_images``: the files that could not be read).
    """

    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    distances: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


class Evaluation(ABC):
    """How a run's encoder is scored (built with the run: :func:`.build.build`).

    ``untrained`` rebuilds the encoder's initialisation, the baseline an evaluation compares
    with (None when ``eval.baselines`` is false).
    """

    #: The metric of the curves, measured every ``eval.every`` epochs (``metrics.jsonl``).
    curve: ClassVar[str]
    untrained: Callable[[], nn.Module] | None

    @abstractmethod
    def curve_point(self, encoder: nn.Module, device: torch.device) -> float:
        """:attr:`curve` of ``encoder``, during training."""

    @abstractmethod
    def describe(self, value: float) -> str:
        """A curve point as the epoch's log line shows it."""

    @abstractmethod
    def score(self, encoder: nn.Module, device: torch.device) -> Scores:
        """Every metric of the trained ``encoder`` and of the baselines."""

    @abstractmethod
    def summary(self, scores: Scores) -> str:
        """The line logged once the run is evaluated."""


def evaluate_run(
    spec: Spec,
    evaluation: Evaluation,
    encoder: nn.Module,
    device: torch.device,
    run_dir: Path,
    *,
    training: dict[str, Any],
    log: Callable[[str], None] = print,
    scored: Callable[[Scores], None] | None = None,
) -> dict[str, Any]:
    """Score the trained ``encoder`` and its baselines; write ``report.json``, ``report.md``
    and the plots into ``run_dir``; return the report. ``scored`` is handed the scores (the
    loop gives them to the loggers)."""
    tic = time.perf_counter()
    scores = evaluation.score(encoder, device)
    if scored is not None:
        scored(scores)
    report = make_report(
        spec.data,
        run_dir,
        device,
        metrics=scores.metrics,
        baselines=scores.baselines,
        training=training,
        seconds=time.perf_counter() - tic,
        notes=scores.notes,
    )
    write_report(report, run_dir, distances=scores.distances)
    log(evaluation.summary(scores))
    unreadable = scores.notes.get("unreadable_images") or {}
    if unreadable.get("count"):
        log(unreadable_line(unreadable))
    log(f"report: {run_dir / 'report.md'}")
    return report
