"""A wall-clock budget for sympy steps that can run long on unlucky input.

``solve``, ``simplify`` and ``limit`` are exact but unbounded. Each optional step runs under a
budget; when it runs out the caller falls back to a numeric method. The budget uses SIGALRM, so
it applies in the main thread of a Unix process; elsewhere the step simply runs unbounded.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class OutOfTime(Exception):
    """A budgeted step did not finish in time."""


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise ``OutOfTime`` inside the block after ``seconds`` (main thread on Unix only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def _expire(signum: int, frame: object) -> None:
        raise OutOfTime

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(step: Callable[[], T], seconds: float) -> T | None:
    """Run ``step`` under a budget; ``None`` when it runs out of time or sympy gives up."""
    try:
        with time_budget(seconds):
            return step()
    except (OutOfTime, NotImplementedError, RecursionError, ValueError, TypeError):
        return None
