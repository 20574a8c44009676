"""The study behind ``fmicl tune``: where it lives, how a worker runs its trials.

A study is an Optuna study in a storage (``--storage``): a SQLite file in the output folder by
default, an RDB URL (``postgresql+psycopg://...``) or ``journal:PATH`` (Optuna's journal file,
for a shared file system). Its configuration (the spec, the objectives, the metric) is kept
in the study itself, so a worker on another machine joins with only the storage URL and the
study's name, and rerunning the command continues the study.

A trial trains the spec with the objective and settings it draws (:mod:`.space`), reports the
curve the loop computes every ``eval.every`` epochs, and the pruner stops the hopeless ones
against the trials of the same objective. A trial whose loss diverges is pruned with the
reason. A worker killed mid-trial leaves its trial running in the storage; the next worker
marks it failed (its heartbeat stopped, or, on the same machine, its process is gone).
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from .. import __version__
from ..errors import FmiclError, SpecError, SpecWarning, TrainingDiverged
from ..training.spec import Spec, spec_from_toml
from .space import OBJECTIVE, ObjectiveSpace, build_spaces

#: The trial states that count toward ``--trials`` and toward each objective's share.
COUNTED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.RUNNING,
)

#: Where the leaderboard's metric comes from in a run's report.
METRICS = {"knn": "knn_top1", "linear": "linear_top1", "sts": "sts_spearman"}

#: The curve (``eval.every``) the pruner reads for each metric; its evaluation gives both.
CURVES = {"knn": "knn_top1", "linear": "knn_top1", "sts": "sts_spearman"}

#: The key of the study's own configuration in its user attributes.
CONFIG_KEY = "fmicl_tune"

#: Seconds between a running trial's heartbeats (RDB storages) and after which a silent one
#: is marked failed.
HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 60

#: Trials that fail in a row before a worker stops (a setting that cannot be built fails
#: every time; the budget counts finished trials only).
MAX_FAILURES = 5


class TuneError(SpecError):
    """A tuning study that cannot start or go on; the message says what to change."""


@dataclass(frozen=True)
class TuneConfig:
    """What a study tunes (kept in the study, the same for every worker)."""

    spec_toml: str
    objectives: tuple[str, ...]
    metric: str
    pruner: str = "median"
    version: str = __version__

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "objectives": list(self.objectives)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> TuneConfig:
        """Read what another worker stored; anything malformed is an error, not a crash."""
        ok = isinstance(data, Mapping)
        ok = ok and isinstance(data.get("spec_toml"), str)
        ok = ok and isinstance(data.get("objectives"), list)
        ok = ok and all(isinstance(o, str) for o in data.get("objectives", []))
        ok = ok and data.get("metric") in METRICS and data.get("pruner") in PRUNERS
        if not ok:
            raise TuneError(
                f"{where} has no readable fmicl tune configuration; it was not made by "
                "fmicl tune, or by an incompatible version: give another --study name"
            )
        return cls(
            data["spec_toml"],
            tuple(data["objectives"]),
            data["metric"],
            data["pruner"],
            str(data.get("version", "")),
        )

    def spec(self) -> Spec:
        """The spec every trial trains (its warnings were shown when the study began)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpecWarning)
            return spec_from_toml(self.spec_toml, "the study's spec")


PRUNERS = ("median", "hyperband", "none")


# ------------------------------------------------------------------------------- storage
def storage_url(storage: str | None, out: Path) -> str:
    """The storage URL: the default SQLite file ``out/study.db``, or what ``--storage`` says."""
    if storage is None:
        return f"sqlite:///{(out / 'study.db').resolve()}"
    return storage


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url``; an unusable URL is a :class:`TuneError` saying what
    forms there are."""
    from optuna.storages import RDBStorage

    forms = (
        "sqlite:///PATH.db, postgresql+psycopg://USER@HOST/DB, mysql+pymysql://..., or "
        "journal:PATH (Optuna's journal file on a shared file system)"
    )
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.removeprefix("journal:"))
        if not path.parent.is_dir():
            raise TuneError(f"--storage {url}: the folder {path.parent} does not exist")
        if path.is_dir():
            raise TuneError(f"--storage {url}: {path} is a folder; name a file in it")
        try:
            journal = JournalStorage(JournalFileBackend(str(path)))
            journal.get_all_studies()  # reads the file: a file that is not a journal fails here
            return journal
        except (OSError, ValueError) as err:  # unreadable, or not a journal (bad JSON lines)
            raise TuneError(
                f"--storage {url}: cannot read it as an Optuna journal file "
                f"({_first_line(err)}); give a new file or the journal of a study"
            ) from None
    if "://" not in url:
        raise TuneError(f"--storage {url!r} is not a storage URL; use {forms}")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 60}  # several workers write the same file
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        return RDBStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
        )
    except (ImportError, ModuleNotFoundError) as err:
        raise TuneError(
            f"--storage {shown_url(url)}: the database driver it names is not installed "
            f"({err}); install it (PostgreSQL: pip install 'psycopg[binary]'; MySQL: pip "
            "install pymysql)"
        ) from None
    except Exception as err:  # SQLAlchemy's errors: a wrong URL, a server that is down
        raise TuneError(
            f"--storage {shown_url(url)}: cannot open it ({_first_line(err)}); use {forms}"
        ) from None
    finally:
        optuna.logging.set_verbosity(optuna.logging.ERROR)


def shown_url(url: str) -> str:
    """``url`` as it may be shown: without its password; a SQLite file as its path."""
    from sqlalchemy.engine import make_url

    if url.startswith(("journal:", "sqlite:")):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show the host part only
        return url.split("@")[-1]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def open_study(
    storage: Any, name: str, config: TuneConfig | None, *, seed: int = 0
) -> tuple[Any, TuneConfig]:
    """Create the study ``name`` with ``config``, or load it and check ``config`` is its own
    (None joins with the stored one)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    existing = {
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }
    study = None
    if name not in existing:
        if config is None:
            raise TuneError(
                f"there is no study {name!r} in this storage to join; start it with a spec "
                f"and --objectives (existing studies: {', '.join(sorted(existing)) or 'none'})"
            )
        try:
            study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
        except optuna.exceptions.DuplicatedStudyError:  # another machine made it just now
            study = None
        else:
            study.set_user_attr(CONFIG_KEY, config.as_json())
            stored = config
    if study is None:
        study = optuna.load_study(study_name=name, storage=storage)
        stored = TuneConfig.from_json(_stored_config(study), f"study {name!r}")
        if config is not None:
            _check_same(name, stored, config)
    try:
        spaces = build_spaces(list(stored.objectives), stored.spec())
    except SpecError as err:
        raise TuneError(
            f"study {name!r} tunes objectives {', '.join(stored.objectives)} with its own "
            f"spec, which this installation cannot build ({err}); install the plugins the "
            "study's first machine has"
        ) from None
    study.sampler = BalancedSampler(spaces, seed=seed)
    study.pruner = make_pruner(stored.pruner, stored.spec().train.epochs)
    return study, stored


def _stored_config(study: Any, seconds: float = 10.0) -> Any:
    """The study's configuration, waiting a little for the process that created the study
    to store it."""
    deadline = time.monotonic() + seconds
    while True:
        stored = study.user_attrs.get(CONFIG_KEY)
        if stored is not None or time.monotonic() > deadline:
            return stored
        time.sleep(0.2)


def _check_same(name: str, stored: TuneConfig, given: TuneConfig) -> None:
    for what, a, b in (
        ("objectives", ",".join(stored.objectives), ",".join(given.objectives)),
        ("metric", stored.metric, given.metric),
        ("pruner", stored.pruner, given.pruner),
    ):
        if a != b:
            raise TuneError(
                f"study {name!r} tunes {what} {a}, not {b}: rerun with the same settings to "
                "continue it, leave them out to join it, or give a new --study name (or "
                "another --out, or delete its storage to start over)"
            )
    if stored.spec().data != given.spec().data:
        raise TuneError(
            f"study {name!r} was started with another spec (or --set): rerun with the same "
            "one to continue it, leave SPEC and --set out to join it with its own, or give "
            "a new --study name (or another --out, or delete its storage to start over)"
        )


# ------------------------------------------------------------------------ sampler, pruner
class BalancedSampler(optuna.samplers.BaseSampler):
    """The objective of each new trial chosen so that every objective gets the same number
    of trials (the one with fewest so far, failed ones not counted; ties in ``--objectives``
    order); an objective's first trial takes its default setting (the spec's, or the
    factory's), the others TPE's draws: each objective has the same budget for its own
    settings, and the best it finds is at least as good as its default on the same seed."""

    def __init__(self, spaces: Mapping[str, ObjectiveSpace], seed: int = 0) -> None:
        self.labels = list(spaces)
        self.defaults = {label: space.default_point() for label, space in spaces.items()}
        self.base = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=max(10, 2 * len(self.labels)), constant_liar=True
        )

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        return {}

    def _counts(self, study: Any, trial: Any) -> dict[str, int]:
        """Trials of each objective that count toward the budget, ``trial`` left out."""
        counts = dict.fromkeys(self.labels, 0)
        for t in study.get_trials(deepcopy=False, states=COUNTED):
            label = t.params.get(OBJECTIVE)
            if t.number != trial.number and label in counts:
                counts[label] += 1
        return counts

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        if name != OBJECTIVE:
            label = trial.params.get(OBJECTIVE)
            default = self.defaults.get(label, {}).get(name)
            if default is not None and not self._counts(study, trial).get(label):
                return default
            return self.base.sample_independent(study, trial, name, dist)
        counts = self._counts(study, trial)
        # ties broken from the trial's number, so that two workers choosing at the same
        # moment (both seeing the same counts) choose different objectives
        n = len(self.labels)
        return min(
            self.labels,
            key=lambda label: (counts[label], (self.labels.index(label) - trial.number) % n),
        )

    def before_trial(self, study: Any, trial: Any) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


class PerObjectivePruner(optuna.pruners.BasePruner):
    """``inner`` (median or Hyperband), comparing a trial with its own objective's trials."""

    def __init__(self, inner: optuna.pruners.BasePruner) -> None:
        self.inner = inner

    def prune(self, study: Any, trial: Any) -> bool:
        view: Any = _SameObjective(study, trial.params.get(OBJECTIVE))
        return bool(self.inner.prune(view, trial))


def make_pruner(kind: str, epochs: int = 0) -> optuna.pruners.BasePruner:
    """The ``--pruner``: ``median`` (the first 3 trials of an objective run to the end; then
    a trial below the median of its objective's trials at the same curve point is stopped,
    once it has trained a quarter of its ``epochs``: early kNN accuracy is a noisy guide),
    ``hyperband`` (Optuna's, over the whole study) or ``none``."""
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner()  # its brackets read the study itself
    median = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=epochs // 4)
    return PerObjectivePruner(median)


class _SameObjective:
    """A study seen through the trials of one objective (what the pruner compares with)."""

    def __init__(self, study: Any, label: Any) -> None:
        self._study, self._label = study, label

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [t for t in trials if t.params.get(OBJECTIVE) == self._label]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


# --------------------------------------------------------------------------------- trials
@dataclass
class Worker:
    """One process's loop over trials until the study has ``trials`` finished ones."""

    study: Any
    config: TuneConfig
    out: Path
    trials: int
    log: Callable[[str], None] = print
    verbose: bool = False
    spaces: dict[str, ObjectiveSpace] = field(init=False)
    base: Spec = field(init=False)

    def __post_init__(self) -> None:
        self.base = self.config.spec()
        self.spaces = build_spaces(list(self.config.objectives), self.base)

    def run(self) -> int:
        """Run trials until the budget is reached; returns how many this worker ran."""
        finished: list[Any] = []
        failures = 0
        while True:
            fail_stale_trials(self.study)
            if counted(self.study) >= self.trials:
                return len(finished)
            self.study.optimize(
                self.trial,
                n_trials=1,
                catch=(FmiclError,),
                callbacks=[lambda study, trial: finished.append(trial)],
            )
            last = finished[-1] if finished else None
            if last is not None and last.state == optuna.trial.TrialState.FAIL:
                failures += 1
                if last.user_attrs.get("fatal"):  # every trial would fail the same way
                    raise TuneError(last.user_attrs["error"])
                if failures >= MAX_FAILURES:
                    raise TuneError(
                        f"{failures} trials failed in a row; the last: "
                        f"{last.user_attrs.get('error', '?')}"
                    )
            else:
                failures = 0

    def trial(self, trial: Any) -> float:
        """The Optuna objective: train one setting, return its metric."""
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("process", process_identity())
        trial.set_user_attr("pid", os.getpid())
        label = trial.suggest_categorical(OBJECTIVE, list(self.spaces))
        space = self.spaces[label]
        options = space.sample(trial)
        overrides = space.overrides(options)
        trial.set_user_attr("overrides", overrides)
        name = f"trial-{trial.number:04d}-{label}"
        settings = trial_settings(self.base, space, self.config.metric, trial.number, options)
        # the folder the run will make (pruned runs keep it too); the run's own path at the end
        trial.set_user_attr("run_dir", str(self.out / "trials" / name))
        started = time.perf_counter()
        self.log(f"trial {trial.number}: {label} {describe(options)}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SpecWarning)
                spec = self.base.with_overrides(settings)
            result = _train(spec, self.out / "trials", self._monitor(trial), self._log)
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("seconds", time.perf_counter() - started)
            self.log(f"trial {trial.number}: pruned ({pruned})")
            raise
        except TrainingDiverged as err:
            trial.set_user_attr("seconds", time.perf_counter() - started)
            trial.set_user_attr("pruned", f"diverged: {err}")
            self.log(f"trial {trial.number}: pruned, the loss diverged")
            raise optuna.TrialPruned(f"the loss diverged: {err}") from None
        except FmiclError as err:
            trial.set_user_attr("error", str(err))
            self.log(f"trial {trial.number}: failed: {err}")
            raise
        seconds = time.perf_counter() - started
        metrics = result.report.get("metrics", {})
        key = METRICS[self.config.metric]
        value = metrics.get(key)
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("metrics", _finite(metrics))
        trial.set_user_attr("run_dir", str(result.run_dir))
        if not isinstance(value, float) or not math.isfinite(value):
            given = ", ".join(m for m, k in METRICS.items() if k in metrics) or "none"
            message = (
                f"the runs report no {key} (--metric {self.config.metric}); pick a metric "
                f"their evaluation gives: {given}"
            )
            trial.set_user_attr("error", message)
            trial.set_user_attr("fatal", True)
            raise TuneError(message)
        self.log(f"trial {trial.number}: {self.config.metric} {100 * value:.2f}% ({seconds:.0f} s)")
        return value

    def _monitor(self, trial: Any) -> Callable[[int, float], None]:
        def monitor(epoch: int, value: float) -> None:
            trial.report(value, epoch)
            # at the last epoch the training is paid for: the trial is scored, not pruned
            if epoch < self.base.train.epochs and trial.should_prune():
                reason = f"at epoch {epoch}, curve {100 * value:.2f}%"
                if self.config.pruner == "median":
                    reason += ", below the median of its objective's trials there"
                trial.set_user_attr("pruned", reason)
                raise optuna.TrialPruned(reason)

        return monitor

    def _log(self, message: str) -> None:
        if self.verbose or message.startswith("warning"):
            self.log("  " + message)


def _train(spec: Spec, out: Path, monitor: Callable[[int, float], None], log: Callable) -> Any:
    from ..training.loop import run_spec

    return run_spec(spec, out, log=log, monitor=monitor)


def trial_settings(
    base: Spec, space: ObjectiveSpace, metric: str, number: int, options: Mapping[str, Any]
) -> list[str]:
    """The ``--set`` lines of trial ``number``: its objective and options, its run's name,
    quiet, scored on validation data, with a curve for the pruner."""
    settings = [
        *space.overrides(options),
        f'run.name="trial-{number:04d}-{space.label}"',
        "train.progress=false",
        "eval.baselines=false",
        *validation(base, metric),
    ]
    if not base.eval.every:
        settings.append(f"eval.every={max(1, base.train.epochs // 5)}")
    return settings


def preflight(config: TuneConfig) -> None:
    """Build what the first trial would train (data, model, evaluation) without training
    it, so that a spec or metric that cannot work fails before any trial: a data set that is
    not there, a metric its evaluation does not give."""
    from ..training.build import build
    from ..training.device import resolve_device

    base = config.spec()
    spaces = build_spaces(list(config.objectives), base)
    space = next(iter(spaces.values()))
    options = space.sample(optuna.trial.FixedTrial(space.default_point()))
    settings = trial_settings(base, space, config.metric, 0, options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)
        spec = base.with_overrides(settings)
        plain = spec.with_overrides([f"eval.holdout={base.eval.holdout}"])  # the spec's own
    device = resolve_device(spec.run.device)
    # first as the spec evaluates (what its evaluation gives), then as a trial does
    curve = build(plain, device=device).evaluation.curve
    if CURVES[config.metric] != curve:
        given = [m for m, c in CURVES.items() if c == curve]
        raise TuneError(
            f"--metric {config.metric} needs {METRICS[config.metric]}, which this spec's "
            f"evaluation does not give (its curve is {curve}): "
            + (
                f"use --metric {' or '.join(given)}"
                if given
                else "tuning needs labelled evaluation data (data.eval_name) or STS"
            )
        )
    if spec.eval.holdout != plain.eval.holdout:
        build(spec, device=device)  # the held-out split (enough images on each side)


#: The share of the train split a trial is scored on (``eval.holdout``) when the spec sets none.
HOLDOUT = 0.2


def validation(spec: Spec, metric: str) -> list[str]:
    """What makes a trial score on validation data, never on the test split: a held-out
    :data:`HOLDOUT` of the train split for images (the spec's own ``eval.holdout`` if set);
    STS runs score on ``data.eval_split``, which should be ``dev`` for tuning."""
    if metric == "sts" or spec.eval.holdout:
        return []
    return [f"eval.holdout={HOLDOUT}"]


def describe(options: Mapping[str, Any]) -> str:
    """``alpha=12.3 gamma=0.81 a=2.37`` for a log line."""
    parts = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            parts.append(describe(value))
        elif isinstance(value, float):
            parts.append(f"{key}={value:.3g}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(p for p in parts if p)


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and math.isfinite(float(v))
    }


def counted(study: Any) -> int:
    """Trials that count toward ``--trials``: finished (complete or pruned) and running."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def fail_stale_trials(study: Any) -> None:
    """Mark failed the running trials whose worker is gone: its heartbeat stopped (RDB
    storages), or it ran on this machine and its process no longer exists (any storage)."""
    storage = study._storage
    if isinstance(storage, optuna.storages.RDBStorage):
        optuna.storages.fail_stale_trials(study)
    here = process_identity()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("process") != here or not isinstance(pid, int) or _alive(pid):
            continue
        try:
            storage.set_trial_user_attr(
                t._trial_id, "error", f"its worker (process {pid}) stopped mid-trial"
            )
            storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
        except Exception:  # another worker marked it first
            continue


def process_identity() -> str:
    """Where a worker's process id means something: this machine (host name and boot) and
    its process namespace. Two workers whose identities are equal see each other's
    processes, so a trial's worker that is not alive here really is gone."""
    return "|".join(
        [socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), _pid_namespace()]
    )


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "?"


def cpus() -> int:
    """The cores this process may run on (what --workers share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
