"""Checkpoints written atomically (a temporary file, then a rename) and read back with checks.

A run folder keeps ``checkpoints/last.pt`` (the latest complete epoch) and
``checkpoints/previous.pt`` (the one before), so a crash while writing, a kill or a corrupted
file never leaves a run without a checkpoint to resume from.
"""

from __future__ import annotations

import os
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import FmiclError

#: Bumped when the checkpoint layout changes; older checkpoints are refused with a message.
FORMAT = 1


class CheckpointError(FmiclError):
    """A checkpoint that is missing, truncated, corrupted or from another spec."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A reader sees either the old file or the new one, never a partial write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_atomic`; a clear error when it is unusable."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        size = path.stat().st_size
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) is corrupted or truncated and cannot be read "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "delete it to resume from previous.pt in the same folder, "
            "or start the run again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a fmicl-registry checkpoint of format {FORMAT} "
            f"(found {state.get('format') if isinstance(state, dict) else type(state).__name__})"
        )
    return state


def rng_state() -> dict[str, Any]:
    """Every random generator the training loop draws from."""
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


def rotate_and_save(state: dict[str, Any], folder: Path) -> Path:
    """Keep the current ``last.pt`` as ``previous.pt``, then write ``state`` as ``last.pt``."""
    last = folder / "last.pt"
    if last.is_file():
        os.replace(last, folder / "previous.pt")
    save_atomic(state, last)
    return last


def latest(folder: Path) -> Path | None:
    """The checkpoint to resume from: ``last.pt``, or ``previous.pt`` when ``last.pt`` is
    absent (a kill between the two renames of :func:`rotate_and_save`)."""
    return next((p for p in (folder / "last.pt", folder / "previous.pt") if p.is_file()), None)
