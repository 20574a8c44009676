"""CPU-time budgets: they fire, they nest, and they never leave a timer or handler behind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fmicl_registry.dsl.budget import OutOfTime, attempt, time_budget


def spin(seconds: float) -> str:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return "done"


def test_attempt_returns_the_result_or_none() -> None:
    assert attempt(lambda: spin(0.01), 1.0) == "done"
    assert attempt(lambda: spin(5.0), 0.05) is None


def test_an_inner_budget_cannot_outlive_the_outer_one() -> None:
    start = time.process_time()
    with pytest.raises(OutOfTime), time_budget(0.1):
        attempt(lambda: spin(5.0), 3.0)  # the outer budget ends it, and the outer block too
        spin(5.0)
    assert time.process_time() - start < 2.0


def test_no_timer_or_handler_is_left_behind_even_when_alarms_race() -> None:
    # In a fresh interpreter: in a process where other threads run (torch's intra-op pool,
    # started by earlier tests in the same worker), SIGPROF can reach another thread and the
    # handler then runs late; that case is a known open problem (see the budget module).
    script = """
import signal, time
from fmicl_registry.dsl import budget
from fmicl_registry.dsl.budget import OutOfTime, time_budget
def spin(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
before = signal.getsignal(signal.SIGPROF)
for _ in range(2000):
    try:
        with time_budget(0.0005):
            spin(0.0005)
    except OutOfTime:
        pass
assert budget._deadlines == [], budget._deadlines
assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
assert signal.getsignal(signal.SIGPROF) == before
"""
    process = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 0, process.stderr
