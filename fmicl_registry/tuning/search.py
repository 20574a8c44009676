"""``fmicl tune``: which objective, with which settings, for this data set.

:func:`tune` opens (or creates, or continues) a study, runs its trials in ``workers``
processes until the study has ``trials`` finished ones, then writes the leaderboard, the best
specs and the plots, and with ``confirm`` retrains each objective's best setting on new
seeds. Workers on other machines join the same study with the same storage URL and study name
(:func:`tune` with ``spec`` and ``objectives`` left out): each process takes the next trial
from the storage, so no trial runs twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..training.spec import Spec, load_spec
from . import plots, results
from .space import build_spaces
from .study import (
    METRICS,
    PRUNERS,
    TuneConfig,
    TuneError,
    Worker,
    cpus,
    open_storage,
    open_study,
    preflight,
    shown_url,
    storage_url,
)

#: ``--objectives`` by default: the catalog's divergences and InfoNCE, as ``fmicl sweep``.
DEFAULT_OBJECTIVES = ("kl", "js", "pearson", "sh", "tsallis", "vlc", "infonce")


@dataclass
class TuneResult:
    """What :func:`tune` returns: the output folder, the study and its leaderboard."""

    out: Path
    study_name: str
    storage: str
    rows: list[results.Row] = field(default_factory=list)
    best_spec: Path | None = None
    plots: list[Path] = field(default_factory=list)


def tune(
    spec: Spec | str | Path | None = None,
    *,
    objectives: Sequence[str] | None = None,
    trials: int = 20,
    metric: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    out: str | Path = "runs/tune",
    overrides: Sequence[str] = (),
    pruner: str | None = None,
    confirm: int = 0,
    seed: int | None = None,
    log: Callable[[str], None] = print,
    verbose: bool = False,
) -> TuneResult:
    """Search the objectives and their settings for the best ``metric`` on ``spec``'s data.

    Args:
        spec: the spec every trial trains (a path, a bundled spec's name or a :class:`Spec`;
            None: the digits default). Leave it, ``objectives``, ``overrides``, ``metric`` and
            ``pruner`` out to join an existing study with its own.
        objectives: the objectives to compare: divergences (each run as f-MICL) and
            objectives (``infonce``); default :data:`DEFAULT_OBJECTIVES`.
        trials: finished (complete or pruned) trials the study should have; rerunning with a
            larger number continues it. The objectives share them equally.
        metric: ``knn``, ``linear`` (the trial's final kNN or linear-probe top-1) or ``sts``.
        storage: an Optuna storage URL (``postgresql+psycopg://...``, ``sqlite:///...``,
            ``journal:PATH``); default ``out/study.db``.
        study: the study's name (default: the spec's ``run.name``).
        workers: trials run at once in parallel processes on this machine.
        out: where trial runs, the leaderboard, the best specs and the plots go.
        overrides: ``--set`` changes to the spec.
        pruner: ``median`` (default), ``hyperband`` or ``none``.
        confirm: retrain each objective's best setting on this many new seeds.
        seed: the sampler's seed (default: the spec's ``run.seed``).
        log: where progress lines go.
        verbose: also pass on each trial's own progress lines.

    Example (2 tiny trials on the digits, a few seconds):
        >>> import tempfile, fmicl_registry as fm
        >>> tiny = ["train.epochs=2", "train.warmup_epochs=0.0", "eval.every=1",
        ...         "backbone.width=4", "eval.linear_epochs=1"]
        >>> result = fm.tune(overrides=tiny, objectives=["js", "infonce"], trials=2,
        ...                  out=tempfile.mkdtemp(), log=lambda m: None)
        >>> sorted(row.objective for row in result.rows), result.best_spec.name
        (['infonce', 'js'], 'best.toml')
    """
    if trials < 0 or workers < 1 or confirm < 0:
        raise TuneError("--trials and --confirm must be 0 or more, --workers at least 1")
    out = Path(out)
    joining = (
        spec is None
        and objectives is None
        and not overrides
        and metric is None
        and pruner is None
        and storage is not None
    )
    config = None
    base: Spec | None = None
    if not joining:
        if isinstance(spec, Spec):
            base = spec.with_overrides(list(overrides))
        else:
            base = load_spec(spec, list(overrides))
        metric = metric or "knn"
        if metric not in METRICS:
            raise TuneError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
        pruner = pruner or "median"
        if pruner not in PRUNERS:
            raise TuneError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
        labels = tuple(objectives if objectives is not None else DEFAULT_OBJECTIVES)
        build_spaces(list(labels), base)  # an unknown objective fails before anything is made
        config = TuneConfig(base.to_toml(), labels, metric, pruner)
        preflight(config)  # the data, the model and the metric, before the study is made
    name = study or (base.run.name if base is not None else None)
    if name is None:
        raise TuneError("to join a study give its name: --study NAME")
    out.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage, out)
    sampler_seed = seed if seed is not None else (base.run.seed if base is not None else 0)
    opened, config = open_study(open_storage(url), name, config, seed=sampler_seed)
    if joining:
        preflight(config)  # the study's spec on this machine: its data, its plugins
    log(f"study {name!r} in {shown_url(url)}: {len(config.objectives)} objectives, {trials} trials")
    if workers == 1:
        Worker(opened, config, out, trials, log=log, verbose=verbose).run()
    else:
        _run_workers(url, name, out, trials, workers, sampler_seed, verbose)
    return report(opened, config, out, url, confirm=confirm, workers=workers, log=log)


def report(
    study: Any,
    config: TuneConfig,
    out: Path,
    url: str,
    *,
    confirm: int = 0,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> TuneResult:
    """Write the leaderboard, best specs and plots of ``study`` (and confirm) into ``out``."""
    rows = results.leaderboard(study, config)
    if confirm:
        results.confirm(study, rows, config, out, seeds=confirm, workers=workers, log=log)
    board = results.write_leaderboard(rows, config, out, summary=results.cost(study))
    best = results.write_best_specs(study, rows, config, out)
    written = plots.write_plots(study, config, out)
    log(board.read_text())
    if best is not None:
        log(f"best spec: {best} (fmicl train {best})")
    if written:
        log("plots: " + ", ".join(str(p) for p in written))
    return TuneResult(out, study.study_name, url, rows, best, written)


def _run_workers(
    url: str, name: str, out: Path, trials: int, workers: int, seed: int, verbose: bool
) -> None:
    """``workers`` processes on the study; each takes the next trial from the storage."""
    context = get_context("spawn")
    threads = max(1, cpus() // workers)
    procs = [
        context.Process(
            target=_worker_main,
            args=(url, name, str(out), trials, threads, seed + i, verbose, i + 1),
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        # the terminal's Ctrl-C reached the workers too (one process group): each marks its
        # trial failed and stops; the ones that do not within a minute are terminated
        for p in procs:
            p.join(timeout=60)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        raise
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise TuneError(
            f"{len(bad)} of {workers} workers stopped with an error (above); the study "
            "keeps every finished trial: rerun the command to go on"
        )


def _worker_main(
    url: str, name: str, out: str, trials: int, threads: int, seed: int, verbose: bool, n: int
) -> None:
    """A worker process: open the study and run trials until it has enough."""
    import sys

    import torch

    from ..errors import FmiclError

    torch.set_num_threads(threads)

    def log(message: str) -> None:
        print(f"[worker {n}] {message}", flush=True)

    try:
        study, config = open_study(open_storage(url), name, None, seed=seed)
        Worker(study, config, Path(out), trials, log=log, verbose=verbose).run()
    except FmiclError as err:
        print(f"[worker {n}] error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C: Optuna has marked the running trial failed
        log("interrupted")
        sys.exit(130)
