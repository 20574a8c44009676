"""A checkpoint file: what it may hold, and how it is read without running anything.

* It is a ``torch.save`` archive of plain data only: tensors, numbers, strings, booleans,
  ``None``, lists, tuples and dicts (the model's and the optimiser's state, the scheduler's
  counters, the random generators' states, the epoch and step, and the spec it was trained
  with). It is read with ``torch.load(weights_only=True)`` and nothing added to that allow-list:
  PyTorch's restricted unpickler rebuilds exactly those types and refuses any other Python
  object, so a file whose pickle would call ``os.system`` (or anything else) is refused
  before anything in it runs. Reading needs torch 2.6 or newer (weights-only loading of
  earlier versions could be made to run code, CVE-2025-32434).
* Its SHA-256 must be one of those recorded in ``checksums.json`` beside it; a flipped byte, a
  truncated file, random bytes or a file replaced by another is refused with the reason.
* It has the current :data:`FORMAT` and every entry of :data:`ENTRIES`, each of its kind.

:func:`read` raises :class:`Unusable` saying why a file cannot be used; ``checkpoint.load``
and ``checkpoint.load_latest`` turn that into a ``CheckpointError``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

#: Bumped when the checkpoint layout changes; older checkpoints are refused with a message.
#: Format 1 (fmicl-registry 0.x before checksums) recorded no spec and no checksum.
FORMAT = 2

#: The file beside the checkpoints that records their SHA-256.
CHECKSUMS = "checksums.json"


class Unusable(Exception):
    """Why one checkpoint file cannot be used (a phrase: ``f"{path} {reason}"``)."""


def read_checksums(folder: Path) -> tuple[list[dict[str, Any]] | None, str]:
    """The entries of ``checksums.json``, or None and why there are none."""
    path = folder / CHECKSUMS
    if not path.is_file():
        return None, f"{CHECKSUMS} beside it is missing"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["checkpoints"]
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("sha256"), str) for e in entries
        ):
            raise ValueError("no list of checksums")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"{CHECKSUMS} beside it cannot be read ({err})"
    return entries, ""


def _weights_only(data: bytes) -> Any:
    """``torch.load`` with PyTorch's own weights-only allow-list and nothing added to it."""
    if torch.torch_version.TorchVersion(torch.__version__) < "2.6":
        raise Unusable(
            f"was not read: reading checkpoints safely needs torch 2.6 or newer (this is "
            f"torch {torch.__version__}, whose weights-only loading could be made to run code, "
            "CVE-2025-32434); upgrade torch"
        )
    added = torch.serialization.get_safe_globals()  # by other code in this process
    torch.serialization.clear_safe_globals()
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    finally:
        if added:
            torch.serialization.add_safe_globals(added)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        state = _weights_only(data)
    except Unusable:
        raise
    except Exception as err:  # any failure to parse makes the file unusable
        text = str(err)
        if "Weights only load failed" in text:
            detail = next(
                (
                    line.strip()
                    for line in text.splitlines()
                    if "Unsupported" in line or "GLOBAL" in line
                ),
                "",
            )
            raise Unusable(
                "holds Python objects other than tensors, numbers and strings"
                + (f" ({detail})" if detail else "")
                + ", which no fmicl-registry checkpoint contains; it was refused without "
                "running any of it: it was not written by fmicl-registry, or was altered"
            ) from None
        first = text.splitlines()[0][:200] if text else ""
        raise Unusable(
            f"is corrupted or truncated and cannot be read ({type(err).__name__}: {first})"
        ) from None
    if not isinstance(state, dict):
        raise Unusable(
            f"is not a fmicl-registry checkpoint (it holds a {type(state).__name__}, not a dict)"
        )
    return state


def _check_format(state: dict[str, Any]) -> None:
    found, version = state.get("format"), state.get("version", "unknown")
    if found == FORMAT:
        return
    if isinstance(found, int) and not isinstance(found, bool) and 0 < found < FORMAT:
        raise Unusable(
            f"was written by an older fmicl-registry ({version}, checkpoint format {found}, "
            f"without checksum or spec record); this version reads format {FORMAT}: evaluate "
            "it with the version that wrote it, or train the run again"
        )
    if isinstance(found, int) and not isinstance(found, bool) and found > FORMAT:
        raise Unusable(
            f"has checkpoint format {found} (written by fmicl-registry {version}), newer than "
            f"the format {FORMAT} this version reads: upgrade fmicl-registry"
        )
    raise Unusable(
        f"is not a fmicl-registry checkpoint (its format entry is {found!r}, expected {FORMAT})"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: The entries of a checkpoint and what each must be.
ENTRIES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "version": (lambda v: isinstance(v, str), "a version string"),
    "epoch": (_is_int, "a count of epochs"),
    "step": (_is_int, "a count of steps"),
    "model": (
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())
        ),
        "a dict of named tensors",
    ),
    "optimizer": (
        lambda v: isinstance(v, dict) and "state" in v and "param_groups" in v,
        "an optimiser state",
    ),
    "scheduler": (lambda v: isinstance(v, dict), "a scheduler state"),
    "rng": (
        lambda v: (
            isinstance(v, dict)
            and isinstance(v.get("torch"), torch.Tensor)
            and isinstance(v.get("python"), tuple)
        ),
        "the random generators' states",
    ),
    "spec": (
        lambda v: isinstance(v, dict) and all(isinstance(s, dict) for s in v.values()),
        "the spec it was trained with",
    ),
}


def _check_entries(state: dict[str, Any]) -> None:
    for key, (ok, what) in ENTRIES.items():
        if key not in state:
            raise Unusable(
                f"has no {key!r} entry ({what}): it was not written by this version of "
                "fmicl-registry, or was altered before its checksum was recorded"
            )
        if not ok(state[key]):
            raise Unusable(f"has a {key!r} entry that is not {what}")


def read(path: Path, checksums: tuple[list[dict[str, Any]] | None, str]) -> dict[str, Any]:
    """One checkpoint file, verified; :class:`Unusable` says why it cannot be used."""
    if not os.path.lexists(path):
        raise Unusable("does not exist")
    if path.is_dir():
        raise Unusable("is a directory, not a checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise Unusable(f"cannot be read ({err.strerror or err})") from None
    digest = hashlib.sha256(data).hexdigest()
    entries, missing = checksums
    if entries is not None and digest not in {e["sha256"] for e in entries}:
        raise Unusable(
            f"is corrupted or truncated: its SHA-256 ({digest[:12]}...) is not the one recorded "
            f"in {CHECKSUMS} when it was written ({len(data)} bytes now)"
        )
    state = _parse(data)
    _check_format(state)
    if entries is None:
        raise Unusable(f"cannot be verified: no checksum is recorded for it ({missing})")
    _check_entries(state)
    return state


def state_dict_problems(
    expected: Mapping[str, Any], given: Mapping[str, Any], *, given_in: str, expected_in: str
) -> str | None:
    """What keeps tensors ``given`` (read from ``given_in``, "the checkpoint") from loading
    into a module whose state dict is ``expected`` (``expected_in``, "the model"): each
    missing, extra or differently shaped tensor, the first five named; None when they fit.

    Example:
        >>> import torch
        >>> state_dict_problems({"w": torch.zeros(2, 3)}, {"w": torch.zeros(3, 2), "b": 0},
        ...                     given_in="the file", expected_in="the model")
        'b is not in the model; w has shape [3, 2] in the file, [2, 3] in the model'
    """
    problems = [f"{k} is missing" for k in expected if k not in given]
    problems += [f"{k} is not in {expected_in}" for k in given if k not in expected]
    problems += [
        f"{k} has shape {list(given[k].shape)} in {given_in}, {list(v.shape)} in {expected_in}"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    if not problems:
        return None
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "; ".join(problems[:5]) + more
