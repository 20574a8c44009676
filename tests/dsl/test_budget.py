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


RACE = """
import signal, sys, threading, time
from fmicl_registry.dsl import budget
from fmicl_registry.dsl.budget import OutOfTime, attempt, time_budget
threads, handler = sys.argv[1] == "threads", sys.argv[2] == "handler"
def spin(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
stop = threading.Event()
if threads:  # busy threads that do not block SIGPROF, as torch's intra-op pool
    import torch
    def work():
        x = torch.randn(200, 200)
        while not stop.is_set():
            x @ x
    pool = [threading.Thread(target=work) for _ in range(2)]
    for t in pool:
        t.start()
def profiler(signum, frame):
    pass
if handler:
    signal.signal(signal.SIGPROF, profiler)
before = signal.getsignal(signal.SIGPROF)
for i in range(2000):
    try:
        with time_budget(0.0005):
            if i % 3 == 0:
                attempt(lambda: spin(0.002), 0.0003)  # nested, spent first
            spin(0.0005)
    except OutOfTime:
        pass
stop.set()
assert budget._deadlines == [], budget._deadlines
assert not budget._busy
assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
after = signal.getsignal(signal.SIGPROF)
# a Python handler that was there is put back; over the default action ours stays (inert)
assert after is (profiler if handler else budget._expire), after
print("ok")
"""


@pytest.mark.parametrize(
    "threads, handler",
    [("threads", "default"), ("alone", "default"), ("alone", "handler")],
)
def test_no_timer_deadline_or_handler_is_left_behind_when_alarms_race(
    threads: str, handler: str
) -> None:
    # In a fresh interpreter, thousands of 0.5 ms budgets (nested ones among them) whose alarms
    # land everywhere: in the body, in the budget's own entry and exit, and, with busy threads
    # that do not block SIGPROF, late and in whatever the main thread is doing.
    process = subprocess.run(
        [sys.executable, "-c", RACE, threads, handler],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert process.returncode == 0, process.stderr
    assert "race condition" not in process.stderr, process.stderr
