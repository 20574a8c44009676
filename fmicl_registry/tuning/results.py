"""What a study gives a user: the leaderboard, the best spec, the confirmation on fresh seeds.

- ``leaderboard.md`` / ``leaderboard.csv``: the best trial of each objective, best first,
  with its settings, its kNN and linear-probe accuracy, how many trials the objective had
  (complete, pruned, failed) and, after ``--confirm S``, the mean and standard deviation of
  the best setting retrained on ``S`` new seeds;
- ``best.toml``: the spec of the best trial, ready for ``fmicl train best.toml``, and
  ``best/<objective>.toml`` for each objective's best;
- ``confirm/``: the confirmation runs (a run already there with its report is not trained
  again when the command is rerun).
"""

from __future__ import annotations

import csv
import json
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ..errors import SpecWarning
from ..training.spec import Spec
from .space import OBJECTIVE
from .study import METRICS, TuneConfig, cpus

#: The columns of the leaderboard beyond the metric itself.
_SHOWN = (("knn_top1", "kNN top-1"), ("linear_top1", "linear top-1"), ("sts_spearman", "STS"))


@dataclass
class Row:
    """One objective on the leaderboard."""

    objective: str
    trial: FrozenTrial | None
    complete: int
    pruned: int
    failed: int
    #: metric name -> values over the confirmation seeds
    confirmed: dict[str, list[float]] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        return None if self.trial is None else self.trial.value

    @property
    def settings(self) -> str:
        if self.trial is None:
            return "-"
        prefix = self.objective + "/"
        return " ".join(
            f"{k.removeprefix(prefix)}={_short(v)}"
            for k, v in self.trial.params.items()
            if k != OBJECTIVE
        )


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def leaderboard(study: Any, config: TuneConfig) -> list[Row]:
    """The best trial of each objective of the study, best first (objectives with no
    complete trial last)."""
    trials = study.get_trials(deepcopy=False)
    rows = []
    for label in config.objectives:
        mine = [t for t in trials if t.params.get(OBJECTIVE) == label]
        done = [t for t in mine if t.state == TrialState.COMPLETE and t.value is not None]
        best = max(done, key=lambda t: (t.value, -t.number)) if done else None
        rows.append(
            Row(
                label,
                best,
                len(done),
                sum(t.state == TrialState.PRUNED for t in mine),
                sum(t.state == TrialState.FAIL for t in mine),
            )
        )
    rows.sort(key=lambda r: -r.value if r.value is not None else float("inf"))
    return rows


def cost(study: Any) -> str:
    """What the study's trials cost: ``"60 trials: 21 complete (22 s each), ..."``."""
    trials = study.get_trials(deepcopy=False)
    parts = []
    for state, word in (
        (TrialState.COMPLETE, "complete"),
        (TrialState.PRUNED, "pruned"),
        (TrialState.FAIL, "failed"),
    ):
        mine = [t for t in trials if t.state == state]
        seconds = [t.user_attrs["seconds"] for t in mine if "seconds" in t.user_attrs]
        each = f" ({statistics.fmean(seconds):.0f} s each)" if seconds else ""
        if mine:
            parts.append(f"{len(mine)} {word}{each}")
    return f"{len(trials)} trials: " + ", ".join(parts or ["none finished"]) + "."


def write_leaderboard(
    rows: Sequence[Row], config: TuneConfig, folder: Path, *, summary: str = ""
) -> Path:
    """``leaderboard.md`` and ``leaderboard.csv`` in ``folder``; returns the Markdown file."""
    metric = METRICS[config.metric]
    shown = [(k, n) for k, n in _SHOWN if any(_metric(r, k) is not None for r in rows)]
    confirmed = [k for k, _ in shown if any(r.confirmed.get(k) for r in rows)]
    seeds = max((len(v) for r in rows for v in r.confirmed.values()), default=0)
    header = ["rank", "objective", f"best {config.metric} (validation)", "settings"]
    header += [f"{n} (validation)" for _, n in shown]
    header += [f"{n}, test, {seeds} seeds" for k, n in shown if k in confirmed]
    header += ["trial", "complete", "pruned", "failed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with (folder / "leaderboard.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["rank", "objective", "metric", "value", "settings", "trial"]
            + [k for k, _ in shown]
            + [c for k in confirmed for c in (f"{k}_mean", f"{k}_std", f"{k}_seeds")]
            + ["complete", "pruned", "failed"]
        )
        for rank, r in enumerate(rows, 1):
            trial = "-" if r.trial is None else str(r.trial.number)
            cells = [str(rank), r.objective, _pct(r.value, metric), r.settings]
            cells += [_pct(_metric(r, k), k) for k, _ in shown]
            cells += [_mean_std(r.confirmed.get(k)) for k in confirmed]
            cells += [trial, str(r.complete), str(r.pruned), str(r.failed)]
            lines.append("| " + " | ".join(cells) + " |")
            stats = []
            for k in confirmed:
                values = r.confirmed.get(k) or []
                stats += [
                    statistics.fmean(values) if values else "",
                    statistics.stdev(values) if len(values) > 1 else "",
                    len(values),
                ]
            writer.writerow(
                [rank, r.objective, config.metric, "" if r.value is None else r.value]
                + [r.settings, trial]
                + [_metric(r, k) if _metric(r, k) is not None else "" for k, _ in shown]
                + stats
                + [r.complete, r.pruned, r.failed]
            )
    note = (
        f"The best trial of each objective by {config.metric}, scored on validation data (a "
        "held-out part of the train split; the spec's seed); "
    ) + (
        f"the test columns retrain that setting on {seeds} new seeds and score it on the "
        "test split (mean ± std)."
        if confirmed
        else "fmicl tune --confirm S retrains each on S new seeds and scores it on the test split."
    )
    summary = f"\n\n{summary}" if summary else ""
    (folder / "leaderboard.md").write_text(note + "\n\n" + "\n".join(lines) + summary + "\n")
    return folder / "leaderboard.md"


def _metric(row: Row, key: str) -> float | None:
    if row.trial is None:
        return None
    value = row.trial.user_attrs.get("metrics", {}).get(key)
    return value if isinstance(value, int | float) else None


def _pct(value: float | None, key: str) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" + ("" if key == "sts_spearman" else "%")


def _mean_std(values: list[float] | None) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


# ------------------------------------------------------------------------------ best specs
def trial_spec(config: TuneConfig, trial: FrozenTrial, name: str) -> Spec:
    """The spec that trains ``trial``'s setting, as a run named ``name``."""
    overrides = list(trial.user_attrs.get("overrides", []))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)
        return config.spec().with_overrides([*overrides, f"run.name={json.dumps(name)}"])


def write_best_specs(
    study: Any, rows: Sequence[Row], config: TuneConfig, folder: Path
) -> Path | None:
    """``best.toml`` (the best trial overall) and ``best/<objective>.toml``."""
    best_dir = folder / "best"
    best_dir.mkdir(exist_ok=True)
    top = None
    for row in rows:
        if row.trial is None:
            continue
        spec = trial_spec(config, row.trial, f"{study.study_name}-{row.objective}")
        value = 100 * (row.value or 0.0)
        header = (
            f"# fmicl tune, study {study.study_name!r}: the best {row.objective} trial "
            f"(trial {row.trial.number}, {config.metric} {value:.2f}% on its validation\n"
            "# images, a held-out part of the train split). Trained as written here, it is "
            "scored on\n# the test split; train it with: fmicl train THIS_FILE\n"
        )
        text = header + spec.to_toml()
        (best_dir / f"{row.objective}.toml").write_text(text)
        if top is None:
            top = folder / "best.toml"
            top.write_text(text)
    return top


# ------------------------------------------------------------------------------- confirm
def confirm(
    study: Any,
    rows: Sequence[Row],
    config: TuneConfig,
    folder: Path,
    *,
    seeds: int,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> None:
    """Retrain each objective's best setting on ``seeds`` new seeds (the spec's seed + 1,
    + 2, ...: not the seed the search selected on), scored on the test split (trials score on
    held-out training images), and put the metrics in ``rows``."""
    jobs = []
    first = config.spec().run.seed + 1
    for row in rows:
        if row.trial is None:
            continue
        for seed in range(first, first + seeds):
            name = f"{row.objective}-trial{row.trial.number}-seed{seed}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SpecWarning)
                spec = trial_spec(config, row.trial, name).with_overrides(
                    [f"run.seed={seed}", "train.progress=false", "eval.holdout=0.0"]
                )
            jobs.append((row, name, spec.to_toml()))
    if not jobs:
        log("nothing to confirm: no objective has a complete trial yet")
        return
    out = folder / "confirm"
    out.mkdir(exist_ok=True)
    log(f"confirming: {len(jobs)} runs ({seeds} seeds for each objective's best setting)")
    results: list[dict[str, float]]
    if workers > 1 and len(jobs) > 1:
        threads = max(1, cpus() // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_confirm_run, [(str(out), n, t, threads) for _, n, t in jobs]))
    else:
        results = [_confirm_run((str(out), n, t, 0)) for _, n, t in jobs]
    for (row, name, _), metrics in zip(jobs, results, strict=True):
        log(
            f"  {name}: "
            + ", ".join(f"{k} {100 * v:.2f}%" for k, v in metrics.items() if k in dict(_SHOWN))
        )
        for key, _ in _SHOWN:
            if key in metrics:
                row.confirmed.setdefault(key, []).append(metrics[key])


def _confirm_run(job: tuple[str, str, str, int]) -> dict[str, float]:
    """One confirmation run (in a worker process): its metrics, kept in ``<name>.json``
    beside the run folder, and read back from there when the same spec ran before."""
    from ..training.loop import run_spec
    from ..training.spec import spec_from_toml

    out, name, text, threads = job
    kept = Path(out) / f"{name}.json"
    try:
        previous = json.loads(kept.read_text())
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, Mapping) and previous.get("spec") == text:
        metrics = previous.get("metrics")
        if isinstance(metrics, Mapping):
            return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    if threads:
        import torch

        torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)
        spec = spec_from_toml(text, name)
    result = run_spec(spec, out, log=lambda message: None)
    metrics = {
        k: float(v)
        for k, v in result.report.get("metrics", {}).items()
        if isinstance(v, int | float)
    }
    kept.write_text(json.dumps({"spec": text, "metrics": metrics, "run_dir": str(result.run_dir)}))
    return metrics
