"""What may change between a checkpoint and the spec it is resumed or evaluated with.

The spec a checkpoint was trained with is recorded in it. Keys that do not change what the run
computes (:data:`FREE_KEYS`, the ``[eval]`` section) may differ, and ``train.epochs`` may grow
(a finished run is extended); each such change is logged. Any other difference (objective,
divergence, backbone, architecture, augmentation, data set, lr, batch size, seed, optimiser,
...) is refused by :class:`SpecChanged`, naming each key with its old and new value.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, SpecChanged, SpecError
from .spec import Spec, spec_from_toml

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
        "train.logger",  # what watches the run, not what it computes
    }
)

_ALLOWED_TEXT = "train.epochs (to more epochs), eval.*, logger.*, " + ", ".join(sorted(FREE_KEYS))


def _flat(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{section}.{key}": value
        for section, values in spec.items()
        for key, value in values.items()
        if value is not None
    }


def _normal(spec: dict[str, Any], where: str) -> dict[str, Any]:
    """``spec`` as written to and read back from ``spec.toml`` (so equal specs compare equal)."""
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
        return key in FREE_KEYS or key.startswith(("eval.", "logger."))

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
