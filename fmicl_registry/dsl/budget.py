"""CPU-time budgets for steps that can run long on unlucky input.

``solve``, ``simplify`` and ``limit`` are exact but unbounded. Each optional step runs under a
budget; when it runs out the caller falls back to a numeric method. The whole definition of a
divergence runs under an outer budget too, so no input keeps a caller waiting. Budgets nest: an
inner one never outlives the one around it.

Budgets count the process's CPU time (``ITIMER_PROF``), not wall time, so a busy machine does
not turn a slow-but-fine derivation into a refusal. They use a signal, so they apply in the main
thread of a Unix process only: a definition made in another thread is derived in a child
process instead (``worker``), in that process's main thread under the same budget, and the
calling thread waits for it under a wall-clock limit.

SIGPROF is delivered to any thread that does not block it (torch's worker threads do not), so
Python can run the handler at any point of the main thread, also while a budget is being entered
or left. The bookkeeping therefore sets ``_busy`` first; the handler never raises while it is
set (it re-arms the timer for a millisecond instead), and a spent budget that raised during its
own entry still pops its deadline. Once a budget has run, the handler stays installed where
the previous disposition was the default one (it does nothing without a live budget); a Python
handler that was there before (a profiler's) is put back.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_SIGNAL: Any = getattr(signal, "SIGPROF", None)
_deadlines: list[float] = []  # process-time deadlines, innermost last
_previous_handler: Any = None
_busy = False  # a budget is being entered or left: the handler must not raise


class OutOfTime(Exception):
    """A budgeted step did not finish in time."""


def _expire(signum: int, frame: Any) -> None:
    # SIGPROF goes to any thread of the process (torch's worker threads do not block it), so
    # Python can run this handler late: after the budget has ended, or while another one is
    # being entered or left. Only a live, spent budget in the middle of its block raises.
    if not _deadlines:
        return  # the alarm of a budget that has already ended
    remaining = _deadlines[-1] - time.process_time()
    if remaining > 0:  # an early or stale alarm: wait for the real deadline
        signal.setitimer(signal.ITIMER_PROF, max(remaining, 1e-3))
        return
    if _busy or (frame is not None and frame.f_code in _BOOKKEEPING):
        # raising in a budget's own entry or exit (or in anything it calls: contextlib,
        # signal.py) would skip its bookkeeping
        signal.setitimer(signal.ITIMER_PROF, 1e-3)
        return
    raise OutOfTime


def _arm(deadline: float) -> None:
    signal.setitimer(signal.ITIMER_PROF, max(deadline - time.process_time(), 1e-3))


@contextlib.contextmanager
def _signal_blocked() -> Iterator[None]:
    """Keep the alarm out while the budget stack changes, so it is never left half-updated."""
    assert _SIGNAL is not None
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {_SIGNAL})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _usable() -> bool:
    return (
        _SIGNAL is not None
        and hasattr(signal, "pthread_sigmask")
        and threading.current_thread() is threading.main_thread()
    )


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise ``OutOfTime`` inside the block after ``seconds`` of CPU time (main thread only).

    Example:
        >>> with time_budget(5.0):
        ...     total = sum(range(1000))
    """
    global _previous_handler, _busy
    if not _usable():
        yield
        return
    _busy = True  # first: from here the handler defers (in this frame, _BOOKKEEPING does)
    owned = pushed = False
    try:
        with _signal_blocked():
            if not _deadlines:
                if signal.getitimer(signal.ITIMER_PROF)[0] > 0:
                    owned = False  # someone else (a profiler) owns the timer: do not steal it
                else:
                    owned = True
                    current = signal.signal(_SIGNAL, _expire)
                    if current is not _expire:
                        _previous_handler = current
            else:
                owned = True
            if owned:
                deadline = time.process_time() + seconds
                if _deadlines:
                    deadline = min(deadline, _deadlines[-1])
                _deadlines.append(deadline)
                pushed = True
                _arm(deadline)
        _busy = False
        yield
    finally:
        _busy = True
        try:
            if pushed:
                with _signal_blocked():
                    _deadlines.pop()  # from here on a late alarm of this budget is a no-op
                    signal.setitimer(signal.ITIMER_PROF, 0)
                    if _deadlines:
                        _arm(_deadlines[-1])  # the outer budget goes on (fires soon if spent)
                    else:
                        # drop an alarm that came too late (without waiting: another thread
                        # can take a pending one between a check and a sigwait)
                        if hasattr(signal, "sigtimedwait"):  # not on macOS
                            signal.sigtimedwait({_SIGNAL}, 0)
                        if callable(_previous_handler):
                            signal.signal(_SIGNAL, _previous_handler)
                        # else (the default action, or ignore) the handler stays: it does
                        # nothing without a live budget, and restoring the default races
                        # with an alarm already caught by another thread, which Python then
                        # reports as "Signal 27 ignored due to race condition".
        finally:
            _busy = False


#: Frames in which the alarm must not raise: the budget's own entry and exit.
_BOOKKEEPING = frozenset(
    {
        time_budget.__wrapped__.__code__,  # type: ignore[attr-defined]
        _signal_blocked.__wrapped__.__code__,  # type: ignore[attr-defined]
        contextlib._GeneratorContextManager.__enter__.__code__,
        contextlib._GeneratorContextManager.__exit__.__code__,
        _expire.__code__,  # a second alarm while the first one's handler runs
        _arm.__code__,
    }
)


def attempt(step: Callable[[], T], seconds: float) -> T | None:
    """Run ``step`` under a budget; ``None`` when it runs out of time or sympy gives up."""
    try:
        with time_budget(seconds):
            return step()
    except OutOfTime:
        if _deadlines and time.process_time() >= _deadlines[-1]:
            raise  # the outer budget is spent too: let it end the whole definition
        return None
    except Exception:  # sympy raises many private exception types when it gives up
        return None
