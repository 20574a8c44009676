"""Wall-clock budgets for steps that can run long on unlucky input.

``solve``, ``simplify`` and ``limit`` are exact but unbounded. Each optional step runs under a
budget; when it runs out the caller falls back to a numeric method. The whole definition of a
divergence runs under an outer budget too, so no input keeps a caller waiting. Budgets nest:
an inner one never outlives the one around it. They use SIGALRM, so they apply in the main
thread of a Unix process; elsewhere the steps simply run unbounded.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_deadlines: list[float] = []
_previous_handler: Any = None


class OutOfTime(Exception):
    """A budgeted step did not finish in time."""


def _expire(signum: int, frame: object) -> None:
    raise OutOfTime


def _arm(deadline: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-3))


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise ``OutOfTime`` inside the block after ``seconds`` (main thread on Unix only)."""
    global _previous_handler
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return
    if not _deadlines:
        if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
            yield  # someone else owns the timer: do not steal it
            return
        _previous_handler = signal.signal(signal.SIGALRM, _expire)
    deadline = time.monotonic() + seconds
    if _deadlines:
        deadline = min(deadline, _deadlines[-1])
    _deadlines.append(deadline)
    _arm(deadline)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _deadlines.pop()
        if _deadlines:
            _arm(_deadlines[-1])  # the outer budget goes on (and fires soon if it is spent)
        else:
            signal.signal(signal.SIGALRM, _previous_handler)


def attempt(step: Callable[[], T], seconds: float) -> T | None:
    """Run ``step`` under a budget; ``None`` when it runs out of time or sympy gives up."""
    try:
        with time_budget(seconds):
            return step()
    except OutOfTime:
        if _deadlines and time.monotonic() >= _deadlines[-1]:
            raise  # the outer budget is spent too: let it end the whole definition
        return None
    except (NotImplementedError, RecursionError, ValueError, TypeError, ArithmeticError):
        return None
    except Exception:  # sympy raises many private exception types when it gives up
        return None
