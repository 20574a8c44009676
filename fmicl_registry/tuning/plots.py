"""The study's plots, as PNG files in its output folder.

- ``history.png``: the metric of every trial in the order they ran, one colour per objective,
  pruned trials at their last curve point (hollow), and the best so far;
- ``importances.png``: for each objective with at least two searched settings, how much of the
  metric's variance each setting explains (Optuna's fANOVA, on that objective's trials);
- ``alpha_gamma.png``: the metric against ``alpha`` and ``gamma`` (log scale), one colour per
  divergence, and against each divergence parameter and baseline setting in further panels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ..training.report import _pyplot
from .space import OBJECTIVE
from .study import TuneConfig


def _value(t: FrozenTrial) -> float | None:
    if t.state == TrialState.COMPLETE:
        return t.value
    if t.state == TrialState.PRUNED and t.intermediate_values:
        return t.intermediate_values[max(t.intermediate_values)]
    return None


def _colours(labels: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def write_plots(study: Any, config: TuneConfig, folder: Path) -> list[Path]:
    """Write the three plots; returns their paths (a plot with nothing to show is skipped)."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.params.get(OBJECTIVE)]
    written = []
    for make in (_history, _importances, _against_settings):
        path = make(trials, config, folder)
        if path is not None:
            written.append(path)
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _history(trials: list[FrozenTrial], config: TuneConfig, folder: Path) -> Path | None:
    points = [(t, v) for t in trials if (v := _value(t)) is not None]
    if not points:
        return None
    plt = _pyplot()
    colours = _colours(config.objectives)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label in config.objectives:
        done = [
            (t.number, 100 * v)
            for t, v in points
            if t.params[OBJECTIVE] == label and t.state == TrialState.COMPLETE
        ]
        pruned = [
            (t.number, 100 * v)
            for t, v in points
            if t.params[OBJECTIVE] == label and t.state == TrialState.PRUNED
        ]
        if done:
            ax.scatter(*zip(*done, strict=True), color=colours[label], label=label, s=28)
        if pruned:
            ax.scatter(
                *zip(*pruned, strict=True), facecolors="none", edgecolors=colours[label], s=28
            )
    best, steps = -math.inf, []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and t.value is not None:
            best = max(best, 100 * t.value)
        if best > -math.inf:
            steps.append((t.number, best))
    if steps:
        ax.step(*zip(*steps, strict=True), where="post", color="black", lw=1, label="best so far")
    ax.set(
        xlabel="trial",
        ylabel=f"{config.metric} (%)",
        title="optimisation history (hollow: pruned, at its last curve point)",
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, ncol=2)
    return _save(fig, folder / "history.png")


def _importances(trials: list[FrozenTrial], config: TuneConfig, folder: Path) -> Path | None:
    import optuna

    found: dict[str, dict[str, float]] = {}
    for label in config.objectives:
        mine = [
            t for t in trials if t.params.get(OBJECTIVE) == label and t.state == TrialState.COMPLETE
        ]
        names = sorted({k for t in mine for k in t.params if k != OBJECTIVE})
        shared = [k for k in names if all(k in t.params for t in mine)]
        if len(shared) < 2 or len(mine) < 4:
            continue
        view = optuna.create_study(direction="maximize")
        view.add_trials(mine)
        try:
            scores = optuna.importance.get_param_importances(view, params=shared)
        except (RuntimeError, ValueError):  # e.g. every trial gave the same value
            continue
        found[label] = {k.removeprefix(label + "/"): float(v) for k, v in scores.items()}
    if not found:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(found), figsize=(3.2 * len(found) + 1, 3), squeeze=False, sharex=True
    )
    for ax, (label, scores) in zip(axes[0], found.items(), strict=True):
        names = list(scores)[::-1]
        ax.barh(names, [scores[n] for n in names], color="tab:blue")
        ax.set(title=label, xlim=(0, 1), xlabel="importance (fANOVA)")
    fig.suptitle("what each setting explains of the metric, per objective")
    return _save(fig, folder / "importances.png")


def _against_settings(trials: list[FrozenTrial], config: TuneConfig, folder: Path) -> Path | None:
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    settings: dict[str, list[tuple[str, float, float]]] = {}
    for t in done:
        label = t.params[OBJECTIVE]
        for name, value in t.params.items():
            if name == OBJECTIVE or not isinstance(value, float):
                continue
            option = name.split("/", 1)[1]
            key = option if option in ("alpha", "gamma") else name
            settings.setdefault(key, []).append((label, value, 100 * (t.value or 0.0)))
    if not settings:
        return None
    keys = [k for k in ("alpha", "gamma") if k in settings] + sorted(
        k for k in settings if k not in ("alpha", "gamma")
    )
    plt = _pyplot()
    colours = _colours(config.objectives)
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for label in config.objectives:
            pts = [(v, m) for lab, v, m in settings[key] if lab == label]
            if pts:
                ax.scatter(*zip(*pts, strict=True), color=colours[label], label=label, s=22)
        values = [v for _, v, _ in settings[key]]
        if min(values) > 0 and max(values) / min(values) > 20:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=f"{config.metric} (%)")
        if key in ("alpha", "gamma"):
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle("the metric against each setting (complete trials)")
    return _save(fig, folder / "alpha_gamma.png")
