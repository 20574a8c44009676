"""Checkpoints: written atomically, verified by checksum, read without running anything.

A run folder keeps ``checkpoints/last.pt`` (the latest saved epoch), ``checkpoints/previous.pt``
(the one before) and ``checkpoints/checksums.json`` (the SHA-256 of the last few checkpoint
files, recorded when each was written).

What a checkpoint file may hold and how one is verified (plain data read weights-only, a
checksum recorded when it was written, the format and its entries) is :mod:`.checkpoint_file`.
A ``last.pt`` that cannot be used is skipped for ``previous.pt`` with a warning naming both files
and the reason; when neither can be used, :class:`CheckpointError` says why for each and what to
do.

Writing: the archive is serialised in memory, written to a temporary file beside its target and
fsynced; its checksum is recorded; only then does ``last.pt`` become ``previous.pt`` and the new
file ``last.pt`` (two renames). A kill at any point leaves every checkpoint file with a
recorded checksum; a write that fails (a full disk) removes its temporary file, leaves the
checkpoints as they were and says the run is resumable; a temporary file left by a kill is
removed at the next save or resume.

Which spec changes a resume allows is :mod:`.spec_changes`.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import io
import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import CheckpointError
from .checkpoint_file import CHECKSUMS, FORMAT, Unusable, read, read_checksums

__all__ = [
    "CHECKSUMS",
    "FORMAT",
    "CheckpointError",
    "latest",
    "load",
    "load_latest",
    "remove_stale",
    "rng_state",
    "rotate_and_save",
    "save_atomic",
    "set_aside",
    "set_rng_state",
]

#: How many checksums ``checksums.json`` keeps (the newest first): ``last.pt`` and
#: ``previous.pt`` are always among them, whatever point a kill interrupts a save at.
KEEP_CHECKSUMS = 4

# ------------------------------------------------------------------------------ writing


def _write(handle: IO[bytes], data: bytes) -> None:
    """Write all of ``data`` (a function of its own so that tests can make the disk full)."""
    handle.write(data)


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a fsynced temporary file beside ``path``; on failure nothing is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _write_error(path, err) from None
        raise
    return tmp


def _write_error(path: Path, err: OSError) -> CheckpointError:
    run = path.parent.parent
    last = path.parent / "last.pt"
    kept = (
        f"the run is resumable from the checkpoint already there ({last}, unchanged): free "
        f"some space, then run: fmicl train --resume {run}"
        if last.is_file()
        else "no earlier checkpoint exists: free some space and start the run again"
    )
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return CheckpointError(f"no space left on device while writing {path}; {kept}")
    return CheckpointError(f"cannot write {path}: {err.strerror or err}; {kept}")


def _serialise(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _record(folder: Path, digest: str, state: dict[str, Any]) -> None:
    """Add ``digest`` to ``checksums.json`` (atomically; the newest first)."""
    entries = read_checksums(folder)[0] or []
    entry = {
        "sha256": digest,
        "epoch": state.get("epoch"),
        "step": state.get("step"),
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    entries = [entry, *[e for e in entries if e["sha256"] != digest]][:KEEP_CHECKSUMS]
    text = json.dumps({"format": 1, "checkpoints": entries}, indent=1) + "\n"
    target = folder / CHECKSUMS
    os.replace(_write_temp(target, text.encode()), target)


def remove_stale(folder: Path) -> list[Path]:
    """Remove the temporary files a killed save left in ``folder``; return them."""
    stale = [
        p
        for pattern in (".last.pt.*.tmp", ".previous.pt.*.tmp", f".{CHECKSUMS}.*.tmp")
        for p in folder.glob(pattern)
        if p.is_file() and not p.is_symlink()
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` (temporary file, fsync, rename) and record its checksum.

    A reader sees either the old file or the new one, never a partial write.
    """
    data = _serialise(state)
    tmp = _write_temp(path, data)
    try:
        _record(path.parent, hashlib.sha256(data).hexdigest(), state)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def rotate_and_save(state: dict[str, Any], folder: Path) -> Path:
    """Write ``state`` as ``last.pt``, keeping the current ``last.pt`` as ``previous.pt``.

    The new file is complete and its checksum recorded before either rename, so a full disk
    leaves ``last.pt`` and ``previous.pt`` as they were.
    """
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale(folder)
    last = folder / "last.pt"
    data = _serialise(state)
    tmp = _write_temp(last, data)
    try:
        _record(folder, hashlib.sha256(data).hexdigest(), state)
        if last.is_file():
            os.replace(last, folder / "previous.pt")
        os.replace(tmp, last)
    except OSError as err:
        raise _write_error(last, err) from None
    finally:
        tmp.unlink(missing_ok=True)
    return last


# ------------------------------------------------------------------------------ reading


def load(path: Path) -> dict[str, Any]:
    """One checkpoint file, verified against the ``checksums.json`` beside it (no fallback).

    Raises :class:`CheckpointError` naming the file and the reason it cannot be used.
    """
    try:
        return read(path, read_checksums(path.parent))
    except Unusable as why:
        raise CheckpointError(f"checkpoint {path} {why}") from None


def load_latest(
    folder: Path, *, warn: Callable[[str], None] = print
) -> tuple[dict[str, Any], Path]:
    """The checkpoint to resume or evaluate from: ``last.pt``, else ``previous.pt``.

    When ``last.pt`` cannot be used, ``warn`` gets a line naming both files and the reason,
    and ``previous.pt`` is used; when neither can, :class:`CheckpointError` says why for each.
    """
    last, previous = folder / "last.pt", folder / "previous.pt"
    run = folder.parent
    again = f"fmicl train {run / 'spec.toml'}"
    if not (os.path.lexists(last) or os.path.lexists(previous)):
        raise CheckpointError(
            f"{run} has no checkpoint (checkpoints/last.pt): the run stopped before its first "
            f"checkpoint was written; start it again: {again}"
        )
    checksums = read_checksums(folder)
    try:
        return read(last, checksums), last
    except Unusable as why:
        bad_last = str(why)
    if not os.path.lexists(previous):
        raise CheckpointError(
            f"checkpoint {last} {bad_last}; there is no previous.pt beside it to fall back to: "
            f"restore the checkpoints from a copy, or train the run again: {again}"
        )
    try:
        state = read(previous, checksums)
    except Unusable as why:
        raise CheckpointError(
            f"no usable checkpoint in {folder}: last.pt {bad_last}; previous.pt {why}. Restore "
            f"the checkpoints from a copy, or train the run again: {again}"
        ) from None
    warn(
        f"warning: checkpoint {last} {bad_last}; using {previous} instead "
        f"(epoch {state['epoch']}, step {state['step']})"
    )
    return state, previous


def set_aside(path: Path) -> Path:
    """Rename an unusable ``last.pt`` to ``last.pt.bad`` (``.bad-2``, ...), so that the next
    save does not rotate it into ``previous.pt``; return the new name."""
    target, n = path.with_name(path.name + ".bad"), 1
    while os.path.lexists(target):
        n += 1
        target = path.with_name(f"{path.name}.bad-{n}")
    os.replace(path, target)
    return target


# ------------------------------------------------------------------------------ random state


def rng_state() -> dict[str, Any]:
    """Every random generator the training loop draws from (tensors and plain tuples, which a
    weights-only load reads back)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest(folder: Path) -> Path | None:
    """The checkpoint file a resume would start with (``last.pt``, else ``previous.pt``),
    without reading it."""
    return next((p for p in (folder / "last.pt", folder / "previous.pt") if p.is_file()), None)
