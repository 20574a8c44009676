"""Several workers on one study, and a worker killed mid-trial (SQLite, the default storage)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from tune_helpers import TINY, quiet, sqlite, trials

import fmicl_registry as fm

pytestmark = pytest.mark.slow


def test_two_workers_finish_the_budget_and_run_no_trial_twice(tmp_path: Path) -> None:
    fm.tune(
        overrides=TINY,
        objectives=["js", "infonce"],
        trials=4,
        workers=2,
        out=tmp_path,
        pruner="none",
        log=quiet,
    )
    found = trials(sqlite(tmp_path), "digits")
    finished = [t for t in found if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # a race between two workers' last check may start one trial more, never one less
    assert 4 <= len(finished) <= 5
    assert all(t.state != TrialState.RUNNING for t in found)
    folders = sorted(p.name for p in (tmp_path / "trials").iterdir())
    assert len(folders) == len(found)  # one run folder per trial: none ran twice
    assert sorted(Path(t.user_attrs["run_dir"]).name for t in found) == folders
    assert {t.user_attrs["pid"] for t in found} != {os.getpid()}  # run by the workers
    labels = [t.params["objective"] for t in finished]
    assert abs(labels.count("js") - labels.count("infonce")) <= 1


def _wait_for_running(storage: str, seconds: float = 120) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            running = [
                t
                for t in trials(storage, "digits")
                if t.state == TrialState.RUNNING and "pid" in t.user_attrs
            ]
        except Exception:  # the study is not created yet
            running = []
        if running:
            return running[0].number
        time.sleep(0.5)
    raise AssertionError("no trial started")


def test_a_worker_killed_mid_trial_leaves_a_failed_trial_and_nothing_else_lost(
    tmp_path: Path,
) -> None:
    fm.tune(overrides=TINY, objectives=["js"], trials=1, out=tmp_path, pruner="none", log=quiet)
    (first,) = trials(sqlite(tmp_path), "digits")
    # a second trial, in a process that joins the study (as a second machine would) and is
    # killed while it trains
    args = ["tune", "--storage", sqlite(tmp_path), "--study", "digits", "--trials", "2"]
    args += ["--out", str(tmp_path)]
    worker = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WORKER, *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        number = _wait_for_running(sqlite(tmp_path))
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    killed = {t.number: t for t in trials(sqlite(tmp_path), "digits")}[number]
    assert killed.state == TrialState.RUNNING  # what a killed worker leaves in the storage

    # rerunning the command marks it failed and runs the budget's trial again
    fm.tune(storage=sqlite(tmp_path), study="digits", trials=2, out=tmp_path, log=quiet)
    after = {t.number: t for t in trials(sqlite(tmp_path), "digits")}
    assert after[number].state == TrialState.FAIL
    assert f"process {worker.pid}" in after[number].user_attrs["error"]
    assert after[first.number].value == first.value  # nothing else lost
    assert after[first.number].params == first.params
    done = [t for t in after.values() if t.state == TrialState.COMPLETE]
    assert len(done) == 2


#: A worker whose trials train slowly (so the test can kill it mid-trial): the command line
#: with every training step delayed.
_SLOW_WORKER = """
import sys, time
from fmicl_registry.training import loop
step = loop._Loop.optimise
def slow(self, *args, **kwargs):
    time.sleep(0.5)
    return step(self, *args, **kwargs)
loop._Loop.optimise = slow
from fmicl_registry.cli import cli
cli(sys.argv[1:], prog_name="fmicl")
"""
