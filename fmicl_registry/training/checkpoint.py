"""Checkpoints: written atomically, verified by checksum, read without running anything.

A run folder keeps ``checkpoints/last.pt`` (the latest saved epoch), ``checkpoints/previous.pt``
(the one before) and ``checkpoints/checksums.json`` (the SHA-256 of the last few checkpoint
files, recorded when each was written).

What a checkpoint file may hold, and how it is read:

* It is a ``torch.save`` archive of plain data only: tensors, numbers, strings, booleans,
  ``None``, lists, tuples and dicts (the model's and the optimiser's state, the scheduler's
  counters, the random generators' states, the epoch and step, and the spec it was trained
  with). It is read with ``torch.load(weights_only=True)`` and nothing added to that allow-list:
  PyTorch's restricted unpickler rebuilds exactly those types and refuses any other Python
  object, so a file whose pickle would call ``os.system`` (or anything else) is refused
  before anything in it runs. Reading needs torch 2.6 or newer (weights-only loading of
  earlier versions could be made to run code, CVE-2025-32434).
* Its SHA-256 must be one of those recorded in ``checksums.json``; a flipped byte, a truncated
  file, random bytes or a file replaced by another is refused with the reason.
* ``last.pt`` that cannot be used (any of the above, a directory in its place, an entry
  missing, an unknown format) is skipped for ``previous.pt`` with a warning naming both files
  and the reason; when neither can be used, :class:`CheckpointError` says why for each and what
  to do.

Writing: the archive is serialised in memory, written to a temporary file beside its target and
fsynced; its checksum is recorded; only then does ``last.pt`` become ``previous.pt`` and the new
file ``last.pt`` (two renames). A kill at any point leaves every checkpoint file with a
recorded checksum; a write that fails (a full disk) removes its temporary file, leaves the
checkpoints as they were and says the run is resumable; a temporary file left by a kill is
removed at the next save or resume.

Resuming or evaluating with another spec (:func:`compare_specs`): the spec a checkpoint was
trained with is recorded in it. Keys that do not change what the run computes
(:data:`FREE_KEYS`, the ``[eval]`` section) may differ, and ``train.epochs`` may grow (a
finished run is extended); each such change is logged. Any other difference (objective,
divergence, backbone, architecture, augmentation, data set, lr, batch size, seed, optimiser,
...) is refused by :class:`SpecChanged`, naming each key with its old and new value.
"""

from __future__ import annotations

import copy
import datetime
import errno
import hashlib
import io
import json
import os
import random
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import CheckpointError, SpecChanged

#: Bumped when the checkpoint layout changes; older checkpoints are refused with a message.
#: Format 1 (fmicl-registry 0.x before checksums) recorded no spec and no checksum.
FORMAT = 2

#: The file beside the checkpoints that records their SHA-256.
CHECKSUMS = "checksums.json"

#: How many checksums ``checksums.json`` keeps (the newest first): ``last.pt`` and
#: ``previous.pt`` are always among them, whatever point a kill interrupts a save at.
KEEP_CHECKSUMS = 4

#: Keys of a spec that may differ between a checkpoint and the spec it is resumed or evaluated
#: with: where things are, how much is printed or kept, and the device (plus every ``[eval]``
#: key and ``train.epochs`` when it grows).
FREE_KEYS = frozenset(
    {
        "run.name",
        "run.device",
        "data.root",
        "data.download",
        "data.num_workers",
        "data.eval_name",
        "data.eval_root",
        "data.eval_split",
        "train.progress",
        "train.log_every",
        "train.checkpoint_every",
    }
)

_ALLOWED_TEXT = "train.epochs (to more epochs), eval.*, " + ", ".join(sorted(FREE_KEYS))


class _Unusable(Exception):
    """Why one checkpoint file cannot be used (a phrase: ``f"{path} {reason}"``)."""


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
    entries = _read_checksums(folder)[0] or []
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


def _read_checksums(folder: Path) -> tuple[list[dict[str, Any]] | None, str]:
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
        raise _Unusable(
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
    except _Unusable:
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
            raise _Unusable(
                "holds Python objects other than tensors, numbers and strings"
                + (f" ({detail})" if detail else "")
                + ", which no fmicl-registry checkpoint contains; it was refused without "
                "running any of it: it was not written by fmicl-registry, or was altered"
            ) from None
        first = text.splitlines()[0][:200] if text else ""
        raise _Unusable(
            f"is corrupted or truncated and cannot be read ({type(err).__name__}: {first})"
        ) from None
    if not isinstance(state, dict):
        raise _Unusable(
            f"is not a fmicl-registry checkpoint (it holds a {type(state).__name__}, not a dict)"
        )
    return state


def _check_format(state: dict[str, Any]) -> None:
    found, version = state.get("format"), state.get("version", "unknown")
    if found == FORMAT:
        return
    if isinstance(found, int) and not isinstance(found, bool) and 0 < found < FORMAT:
        raise _Unusable(
            f"was written by an older fmicl-registry ({version}, checkpoint format {found}, "
            f"without checksum or spec record); this version reads format {FORMAT}: evaluate "
            "it with the version that wrote it, or train the run again"
        )
    if isinstance(found, int) and not isinstance(found, bool) and found > FORMAT:
        raise _Unusable(
            f"has checkpoint format {found} (written by fmicl-registry {version}), newer than "
            f"the format {FORMAT} this version reads: upgrade fmicl-registry"
        )
    raise _Unusable(
        f"is not a fmicl-registry checkpoint (its format entry is {found!r}, expected {FORMAT})"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: The entries of a checkpoint and what each must be.
_ENTRIES: dict[str, tuple[Callable[[Any], bool], str]] = {
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
    for key, (ok, what) in _ENTRIES.items():
        if key not in state:
            raise _Unusable(
                f"has no {key!r} entry ({what}): it was not written by this version of "
                "fmicl-registry, or was altered before its checksum was recorded"
            )
        if not ok(state[key]):
            raise _Unusable(f"has a {key!r} entry that is not {what}")


def _read(path: Path, checksums: tuple[list[dict[str, Any]] | None, str]) -> dict[str, Any]:
    """One checkpoint file, verified; :class:`_Unusable` says why it cannot be used."""
    if not os.path.lexists(path):
        raise _Unusable("does not exist")
    if path.is_dir():
        raise _Unusable("is a directory, not a checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _Unusable(f"cannot be read ({err.strerror or err})") from None
    digest = hashlib.sha256(data).hexdigest()
    entries, missing = checksums
    if entries is not None and digest not in {e["sha256"] for e in entries}:
        raise _Unusable(
            f"is corrupted or truncated: its SHA-256 ({digest[:12]}...) is not the one recorded "
            f"in {CHECKSUMS} when it was written ({len(data)} bytes now)"
        )
    state = _parse(data)
    _check_format(state)
    if entries is None:
        raise _Unusable(f"cannot be verified: no checksum is recorded for it ({missing})")
    _check_entries(state)
    return state


def load(path: Path) -> dict[str, Any]:
    """One checkpoint file, verified against the ``checksums.json`` beside it (no fallback).

    Raises :class:`CheckpointError` naming the file and the reason it cannot be used.
    """
    try:
        return _read(path, _read_checksums(path.parent))
    except _Unusable as why:
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
    checksums = _read_checksums(folder)
    try:
        return _read(last, checksums), last
    except _Unusable as why:
        bad_last = str(why)
    if not os.path.lexists(previous):
        raise CheckpointError(
            f"checkpoint {last} {bad_last}; there is no previous.pt beside it to fall back to: "
            f"restore the checkpoints from a copy, or train the run again: {again}"
        )
    try:
        state = _read(previous, checksums)
    except _Unusable as why:
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


# ------------------------------------------------------------------------------ specs


def _flat(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{section}.{key}": value
        for section, values in spec.items()
        for key, value in values.items()
        if value is not None
    }


def _normal(spec: dict[str, Any], where: str) -> dict[str, Any]:
    """``spec`` as written to and read back from ``spec.toml`` (so equal specs compare equal)."""
    from .spec import Spec, SpecError, spec_from_toml

    try:
        with warnings.catch_warnings():  # the spec's own warnings were given when it was read
            warnings.simplefilter("ignore")
            return spec_from_toml(Spec(copy.deepcopy(spec)).to_toml(), where).data
    except SpecError as err:
        raise CheckpointError(f"{where} records a spec that is not valid: {err}") from None


def compare_specs(
    recorded: dict[str, Any], current: dict[str, Any], *, checkpoint: Path, against: str
) -> dict[str, tuple[Any, Any]]:
    """The keys in which ``current`` differs from the spec ``checkpoint`` was trained with.

    Returns the allowed differences (``{"train.epochs": (10, 20)}``): :data:`FREE_KEYS`, the
    ``[eval]`` section, and ``train.epochs`` when it grows. Raises :class:`SpecChanged` naming
    every other difference, with its old and new value (``against`` names the current spec).
    """
    old = _flat(_normal(recorded, f"checkpoint {checkpoint}"))
    new = _flat(_normal(current, against))
    missing = object()
    changed = {
        key: (old.get(key, missing), new.get(key, missing))
        for key in sorted(old.keys() | new.keys())
        if old.get(key, missing) != new.get(key, missing)
    }

    def allowed(key: str, before: Any, after: Any) -> bool:
        if key == "train.epochs":
            return isinstance(before, int) and isinstance(after, int) and after > before
        return key in FREE_KEYS or key.startswith("eval.")

    def show(value: Any) -> str:
        return "(unset)" if value is missing else repr(value)

    refused = {k: v for k, v in changed.items() if not allowed(k, *v)}
    if refused:
        listed = "; ".join(f"{k}: {show(a)} -> {show(b)}" for k, (a, b) in refused.items())
        shrink = (
            " (a run's epochs can only grow)"
            if "train.epochs" in refused and len(refused) == 1
            else ""
        )
        raise SpecChanged(
            f"{against} differs from the spec checkpoint {checkpoint} was trained with, in "
            f"keys that change what the run computes: {listed}{shrink}. Set them back to the "
            f"checkpoint's values, or start a new run with the new values. Keys that may "
            f"change: {_ALLOWED_TEXT}"
        )
    return {
        k: (None if a is missing else a, None if b is missing else b)
        for k, (a, b) in changed.items()
    }


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
