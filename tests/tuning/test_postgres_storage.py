"""``fmicl tune`` on a real PostgreSQL server: workers share one study, no trial runs twice.

The server comes from :func:`conftest.postgres_url` (Debian's ``postgresql``; skipped where it
is not installed, a failure on CI). Everything goes through the real command line in
subprocesses, as on a cluster: two worker processes on one study, then a third process that
joins the finished study with only ``--storage`` and ``--study`` and continues it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tune_helpers

#: A tiny digits run (two epochs of a width-4 CNN): a few seconds a trial on CPU.
TINY = [*tune_helpers.TINY, "train.epochs=2", "eval.linear_epochs=1"]
OBJECTIVES = ("js", "infonce")
TRIALS = 4
WORKERS = 2
#: What the joining process brings the study to.
JOINED = 6

# Both tests use one study (the module's fixture): with --dist loadgroup they stay on one
# pytest-xdist worker; with plain -n each worker that gets one runs the fixture itself.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres_storage")]


def fmicl_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("fmicl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fmicl_registry.cli"]


def fmicl(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``fmicl ARGS``; a failure shows the command's output."""
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [*fmicl_command(), *args], capture_output=True, text=True, timeout=240, env=env
    )
    assert done.returncode == 0, (
        f"fmicl {' '.join(args)} exited with {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done


def load_trials(url: str, name: str) -> list[Any]:
    import optuna

    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=True)


def run_folders(out: Path) -> list[str]:
    trials = out / "trials"
    return sorted(p.name for p in trials.iterdir() if p.is_dir()) if trials.is_dir() else []


@dataclass(frozen=True)
class Started:
    """The study as the two workers left it (a snapshot: later tests extend the study)."""

    url: str
    name: str
    out: Path
    trials: list[Any]
    stdout: str


@pytest.fixture(scope="module")
def started(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Started:
    """``fmicl tune --workers 2`` on the server: js and InfoNCE, 4 trials."""
    name = f"pg-{uuid.uuid4().hex[:8]}"
    out = tmp_path_factory.mktemp("tune-pg")
    done = fmicl(
        "tune",
        *[arg for setting in TINY for arg in ("--set", setting)],
        "--objectives",
        ",".join(OBJECTIVES),
        "--trials",
        str(TRIALS),
        "--workers",
        str(WORKERS),
        "--storage",
        postgres_url,
        "--study",
        name,
        "--out",
        str(out),
    )
    return Started(postgres_url, name, out, load_trials(postgres_url, name), done.stdout)


def test_two_workers_share_the_study_and_run_no_trial_twice(started: Started) -> None:
    from optuna.trial import TrialState

    trials = started.trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # Each worker checks the budget, then takes a trial: both may take the last one at once,
    # so the study can overshoot by one trial per extra worker (study.counted).
    assert TRIALS <= len(finished) <= TRIALS + WORKERS - 1, [t.state for t in trials]
    assert len(finished) == len(trials), "no trial is left running, waiting or failed"
    assert sorted(t.number for t in trials) == list(range(len(trials)))

    # Every trial that started has exactly one run folder, named after its number: a trial
    # run twice would have made a second one (trial-0003-js-2).
    labels = {t.number: t.params["objective"] for t in trials}
    expected = sorted(f"trial-{n:04d}-{label}" for n, label in labels.items())
    assert run_folders(started.out) == expected

    # The complete trials point at their own folders (a pruned one stops before it records it).
    dirs = [t.user_attrs["run_dir"] for t in trials if t.state == TrialState.COMPLETE]
    assert len(dirs) == len(set(dirs)) >= TRIALS - 1
    for run_dir in dirs:
        assert Path(run_dir).parent == started.out / "trials"
        assert (Path(run_dir) / "spec.toml").is_file()

    # The objectives share the budget equally.
    counts = Counter(labels.values())
    assert set(counts) == set(OBJECTIVES)
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    if len(trials) == TRIALS:
        assert counts == {label: TRIALS // len(OBJECTIVES) for label in OBJECTIVES}

    # The worker processes (not this one) recorded themselves on their trials.
    pids = {t.user_attrs["pid"] for t in trials}
    assert all(isinstance(pid, int) and pid != os.getpid() for pid in pids)
    assert 1 <= len(pids) <= WORKERS
    assert {t.user_attrs["host"] for t in trials} == {socket.gethostname()}
    assert (started.out / "leaderboard.md").is_file()


def test_a_process_joins_with_only_storage_and_study(started: Started, tmp_path: Path) -> None:
    from optuna.trial import TrialState

    out = tmp_path / "joined"
    fmicl(
        "tune",
        "--storage",
        started.url,
        "--study",
        started.name,
        "--trials",
        str(JOINED),
        "--out",
        str(out),
    )
    trials = load_trials(started.url, started.name)
    before = {t.number for t in started.trials}
    new = [t for t in trials if t.number not in before]
    # One process: no race, exactly the budget (fewer new ones if the workers overshot).
    assert len(trials) == JOINED and len(new) == JOINED - len(before) >= 1, trials
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in new)
    old_pids = {t.user_attrs["pid"] for t in started.trials}
    assert len({t.user_attrs["pid"] for t in new} - old_pids) == 1, "a third process ran them"

    # The study's own objectives, balanced over the whole study, and its own spec.
    counts = Counter(t.params["objective"] for t in trials)
    assert set(counts) == set(OBJECTIVES)
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    for t in new:
        label = t.params["objective"]
        assert label in OBJECTIVES
        overrides = t.user_attrs["overrides"]
        if label == "infonce":
            assert 'objective.name="infonce"' in overrides
        else:
            assert 'objective.divergence="js"' in overrides
    assert run_folders(out) == sorted(f"trial-{t.number:04d}-{t.params['objective']}" for t in new)
    import tomllib

    for folder in (out / "trials").iterdir():
        spec = tomllib.loads((folder / "spec.toml").read_text())
        assert spec["train"]["epochs"] == 2
        assert spec["backbone"]["width"] == 4
