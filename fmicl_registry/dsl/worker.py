"""Derive a generator in a child process, under a wall-clock limit.

The CPU-time budgets of ``budget`` use a signal, so they only hold in the main thread; a
definition made in another thread runs its derivation here instead: in a separate Python
process (``python -P -c 'from fmicl_registry.dsl.worker import serve; serve()'``), whose main
thread derives under the same CPU-time budget, while the calling thread waits at most
``wall_seconds`` for the answer and kills the child when it does not come. The calling
process's other threads keep running meanwhile: no lock of theirs is held, and no signal is
needed.

The child is a fresh interpreter started with ``exec`` (``subprocess``, not a bare ``fork`` of
a process that may hold torch's threads), not ``multiprocessing``, whose "spawn" would import
the caller's ``__main__`` again in the child (running a script's top-level code twice when it
lacks an ``if __name__ == "__main__"`` guard). It imports sympy and torch once (about 1-2 s)
and then serves definitions one after another: an idle child is kept for the next one.

The protocol is one JSON object per line: the request carries the generator's text, its
parameters (exact fractions), ``normalize`` and the CPU budget; the answer is the derivation
as cache-entry JSON text (``cache.entry_json``) or the error. The caller treats that text as
untrusted, like a cache file: it is loaded through ``cache.load_entry``, which verifies it
against the generator the caller parsed itself.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..errors import DivergenceSpecError
from .budget import OutOfTime

#: How long a new child may take to import its libraries and say it is ready.
STARTUP_SECONDS = 120.0
#: Children deriving at once (each holds sympy and torch: a few hundred MB).
MAX_CHILDREN = 4
#: Idle children kept for the next definition.
MAX_IDLE = 1
_COMMAND = "from fmicl_registry.dsl.worker import serve; serve()"


class WallClockTimeout(OutOfTime):
    """The child did not answer within the wall-clock limit and was killed."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


class _Child:
    """One child process and its two pipes."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the folder holding fmicl_registry
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", _COMMAND],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            bufsize=0,
            close_fds=True,
        )
        self._buffer = b""

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(message).encode() + b"\n")
        stdin.flush()

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None when ``deadline`` (``time.monotonic``) passes first;
        ``EOFError`` when the child has died."""
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise EOFError(f"the derivation process ended ({self.process.wait()})")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        data = json.loads(line)
        if not isinstance(data, dict):
            raise EOFError("the derivation process answered something else")
        return data

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


_lock = threading.Lock()
_idle: list[_Child] = []
_slots = threading.BoundedSemaphore(MAX_CHILDREN)


def _started(deadline: float) -> _Child:
    """An idle child, or a new one once it is ready."""
    with _lock:
        while _idle:
            child = _idle.pop()
            if child.alive():
                return child
            child.kill()
    child = _Child()
    try:
        ready = child.receive(min(deadline, time.monotonic() + STARTUP_SECONDS))
    except (EOFError, ValueError) as err:
        child.kill()
        raise DivergenceSpecError(f"the derivation process did not start: {err}") from None
    if ready is None or not ready.get("ready"):
        child.kill()
        raise WallClockTimeout(STARTUP_SECONDS)
    return child


def _release(child: _Child) -> None:
    with _lock:
        if len(_idle) < MAX_IDLE and child.alive():
            _idle.append(child)
            return
    child.kill()


@atexit.register
def shutdown() -> None:
    """End the idle children (each also ends by itself when this process's pipe closes)."""
    with _lock:
        children, _idle[:] = list(_idle), []
    for child in children:
        child.kill()


def derive_in_child(
    text: str,
    params: dict[str, Any],
    normalize: bool,
    *,
    cpu_seconds: float,
    wall_seconds: float,
) -> str:
    """The derivation of the generator ``text`` (``params``: exact sympy Rationals) as cache
    entry JSON text, computed in a child process under a CPU budget of ``cpu_seconds`` and a
    wall-clock limit of ``wall_seconds`` (from the request; a new child's start-up is not
    counted, up to :data:`STARTUP_SECONDS`). The text is untrusted: verify it (``cache``).

    Raises:
        DivergenceSpecError: the generator was refused (the child's message), or the child
            failed.
        OutOfTime: the CPU budget ran out in the child.
        WallClockTimeout: no answer within ``wall_seconds``; the child was killed.
    """
    started = time.monotonic()
    if not _slots.acquire(timeout=wall_seconds):
        raise WallClockTimeout(wall_seconds)
    try:
        child = _started(started + wall_seconds + STARTUP_SECONDS)
        request = {
            "text": text,
            "params": {k: [int(v.p), int(v.q)] for k, v in params.items()},
            "normalize": normalize,
            "seconds": cpu_seconds,
        }
        try:
            child.send(request)
            answer = child.receive(time.monotonic() + wall_seconds)
        except (OSError, EOFError, ValueError) as err:
            child.kill()
            raise DivergenceSpecError(f"the derivation process failed: {err}", text=text) from None
        if answer is None:
            child.kill()
            raise WallClockTimeout(wall_seconds)
        failed = isinstance(answer.get("error"), dict) and answer["error"].get("kind") == "other"
        if failed:  # a MemoryError, say: start afresh next time
            child.kill()
        else:
            _release(child)
    finally:
        _slots.release()
    return _result(answer, text)


def _result(answer: dict[str, Any], text: str) -> str:
    if isinstance(answer.get("entry"), str):
        return str(answer["entry"])
    error = answer.get("error")
    if not isinstance(error, dict):
        raise DivergenceSpecError("the derivation process answered nothing usable", text=text)
    if error.get("kind") == "time":
        raise OutOfTime
    if error.get("kind") == "spec":
        column = error.get("column")
        raise DivergenceSpecError(
            str(error.get("reason")),
            text=error.get("text") if isinstance(error.get("text"), str) else None,
            column=column if isinstance(column, int) else None,
        )
    raise DivergenceSpecError(
        f"deriving this generator failed: {str(error.get('message'))[:500]}", text=text
    )


# ------------------------------------------------------------------------------- the child
def serve(channel: IO[bytes] | None = None, requests: IO[bytes] | None = None) -> None:
    """The child's loop: answer each request line with one line, until the input ends.

    The answers go to a private copy of the original standard output; whatever a library
    prints goes to standard error instead, so it cannot garble the protocol.
    """
    if channel is None:
        channel = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)
    if requests is None:
        requests = sys.stdin.buffer
    import sympy as sp

    from .budget import time_budget
    from .cache import entry_json
    from .compile import derive_forms
    from .parse import parse_expression

    def answer(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message).encode() + b"\n")
        channel.flush()

    answer({"ready": True})
    for line in requests:
        try:
            request = json.loads(line)
            text, normalize = str(request["text"]), bool(request["normalize"])
            values = {
                str(k): sp.Rational(int(p), int(q)) for k, (p, q) in request["params"].items()
            }
            with time_budget(float(request["seconds"])):
                expr = parse_expression(text, values)
                forms = derive_forms(expr, normalize=normalize, text=text)
            answer({"entry": entry_json(expr, normalize, forms)})
        except OutOfTime:
            answer({"error": {"kind": "time"}})
        except DivergenceSpecError as err:
            reason = {"reason": err.reason, "text": err.text, "column": err.column}
            answer({"error": {"kind": "spec", **reason}})
        except Exception as err:  # MemoryError, a bug: reported, and the child goes on
            answer({"error": {"kind": "other", "message": f"{type(err).__name__}: {err}"}})
