"""What a spec may hold: the typed sections, one line per key, and the component sections.

Each typed section (``[run]``, ``[data]``, ``[train]``, ``[eval]``) is a frozen dataclass whose
fields are its keys: the annotation is the key's type, and :func:`key` gives its default, its
help and its range rules. :data:`SCHEMA` and :data:`RULES` are read off these classes, and a
checked :class:`~fmicl_registry.training.spec.Spec` hands them out (``spec.train.epochs``).
A component section (``[backbone]``, ``[architecture]``, ``[objective]``, ``[augment]``) is a
registered ``name`` plus the factory's options, which the factory checks when it is built.
``[logger]`` holds a table of options per logger that ``train.logger`` names
(``[logger.tensorboard]``).
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import SpecError, SpecWarning

#: A range or choice rule: why a value is refused, or None.
Rule = Callable[[Any], str | None]


def key(default: Any, help: str, *rules: Rule) -> Any:
    """A typed key of a section: its default, its help and the rules its value must pass."""
    return field(default=default, metadata={"help": help, "rules": rules})


def _run_name(value: str) -> str | None:
    """Why ``value`` cannot be a run name (one folder inside ``--out``), or None."""
    if not value or value.strip() != value:
        return "must be a non-empty folder name without leading or trailing spaces"
    if value in {".", ".."} or "/" in value or "\\" in value:
        return "must be one folder name inside the output folder, not a path"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters (a newline, a tab)"
    if len(value.encode("utf-8")) > 200:
        return "must be at most 200 bytes long"
    return None


def _at_least(low: float, *, above: bool = False) -> Rule:
    def rule(value: Any) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if value < low or (above and value == low):
            return f"must be {'greater than' if above else 'at least'} {low:g}"
        return None

    return rule


def _below(high: float) -> Rule:
    def rule(value: Any) -> str | None:
        return None if value < high else f"must be less than {high:g}"

    return rule


def _names(value: Any) -> str | None:
    """Why ``value`` is not a name or a list of distinct names, or None."""
    names = [value] if isinstance(value, str) else value
    if not all(isinstance(name, str) and name for name in names):
        return "must be a name or a list of names (non-empty strings)"
    if len(set(names)) < len(names):
        return "must not name a logger twice"
    return None


def _one_of(*choices: str) -> Rule:
    def rule(value: Any) -> str | None:
        if value in choices:
            return None
        hint = difflib.get_close_matches(value, choices, n=1)
        return f"must be one of {', '.join(map(repr, choices))}" + (
            f" (did you mean {hint[0]!r}?)" if hint else ""
        )

    return rule


# ------------------------------------------------------------------------------ the sections


@dataclass(frozen=True)
class RunSection:
    """``[run]``: the run's name, seed and device."""

    name: str = key("run", "name of the run (the run folder is OUT/NAME)", _run_name)
    seed: int = key(
        0,
        "seed of every random choice (initialisation, batches, augmentations)",
        _at_least(0),
        _below(2**63),
    )
    device: str = key(
        "auto", "'auto' (cuda when available), 'cpu' or 'cuda'", _one_of("auto", "cpu", "cuda")
    )


@dataclass(frozen=True)
class DataSection:
    """``[data]``: the pretraining data set and the one evaluation reads. Its other keys are
    options of the data set's factory (``image_size``), checked there
    (:meth:`Spec.dataset_options`)."""

    name: str = key("digits", "registered data set (fmicl list datasets)")
    root: str | None = key(None, "where the data lives (default: $FMICL_DATA_DIR or a cache)")
    download: bool = key(False, "download the data when it is missing")
    num_workers: int = key(0, "data-loader worker processes", _at_least(0))
    eval_name: str | None = key(
        None, "registered data set evaluation reads (default: name; 'stsb' for a text run)"
    )
    eval_root: str | None = key(None, "where the evaluation data set lives (default: root)")
    eval_split: str = key("test", "the split evaluation scores on ('dev' for GLUE's STS-B)")


@dataclass(frozen=True)
class TrainSection:
    """``[train]``: the optimiser, its schedule, and how the loop runs and records."""

    epochs: int = key(100, "pretraining epochs", _at_least(1))
    batch_size: int = key(256, "global batch size (split over processes)", _at_least(2))
    optimizer: str = key(
        "sgd", "'sgd' (momentum), 'adamw' or 'lars'", _one_of("sgd", "adamw", "lars")
    )
    lr: float = key(0.1, "peak learning rate (after warm-up)", _at_least(0, above=True))
    momentum: float = key(0.9, "SGD/LARS momentum", _at_least(0), _below(1))
    weight_decay: float = key(5e-4, "weight decay", _at_least(0))
    warmup_epochs: float = key(0.0, "linear warm-up, then a cosine schedule to zero", _at_least(0))
    precision: str = key(
        "auto",
        "'auto' (bfloat16 autocast on GPU), 'fp32' or 'bf16'",
        _one_of("auto", "fp32", "bf16"),
    )
    compile: bool = key(False, "torch.compile the model")
    max_steps: int = key(
        0, "stop after this many steps (0: no limit; for smoke tests)", _at_least(0)
    )
    log_every: int = key(10, "write a metrics line every this many steps", _at_least(1))
    checkpoint_every: int = key(
        1, "write a checkpoint every this many epochs (and at the end)", _at_least(1)
    )
    progress: bool = key(True, "show a progress bar")
    logger: str | list[str] | None = key(  # noqa: RUF009 (a default of None, never shared)
        None,
        "logger or list of loggers beside metrics.jsonl, e.g. 'tensorboard' (fmicl list "
        "loggers); their options in [logger.NAME]",
        _names,
    )


@dataclass(frozen=True)
class EvalSection:
    """``[eval]``: the kNN and linear probes, the curves and the baselines."""

    knn_k: int = key(200, "neighbours of the weighted kNN classifier", _at_least(1))
    knn_temperature: float = key(
        0.1, "temperature of the kNN vote weights", _at_least(0, above=True)
    )
    linear_epochs: int = key(100, "epochs of the linear probe on frozen features", _at_least(1))
    every: int = key(
        0, "kNN accuracy every this many epochs for the curves (0: at the end)", _at_least(0)
    )
    baselines: bool = key(True, "also probe raw inputs and a random (untrained) encoder")
    batch_size: int = key(512, "batch size of feature extraction", _at_least(1))
    holdout: float = key(
        0.0,
        "score on this fraction of the evaluation data set's train split, held out from the "
        "probes (the test split is not read): a validation score to select settings on, as "
        "fmicl tune does; 0: score on data.eval_split",
        _at_least(0),
        _below(1),
    )


@dataclass(frozen=True)
class Component:
    """A component section: the registered ``name`` (None: the default) and its options."""

    name: str | None
    options: dict[str, Any]


#: The typed sections, by the name of their TOML table.
SECTIONS: dict[str, type] = {
    "run": RunSection,
    "data": DataSection,
    "train": TrainSection,
    "eval": EvalSection,
}

#: The section of the loggers' options: ``[logger.NAME]`` (a table per logger of
#: ``train.logger``), checked by the logger's factory when the run starts.
LOGGER_OPTIONS = "logger"

#: Component sections: section -> the registry kind its ``name`` is looked up in.
COMPONENTS: dict[str, str | None] = {
    "backbone": "backbones",
    "architecture": "architectures",
    "objective": "objectives",
    "augment": None,  # options of fmicl_registry.data.get_augmentation; name = recipe
}

_INT, _FLOAT, _BOOL, _STR, _OPT_STR = "integer", "number", "boolean", "string", "string or none"
_NAMES = "string or list of strings"
_TYPE_NAMES = {
    "int": _INT,
    "float": _FLOAT,
    "bool": _BOOL,
    "str": _STR,
    "str | None": _OPT_STR,
    "str | list[str] | None": _NAMES,
}
_TYPES: dict[str, tuple[type, ...]] = {
    _INT: (int,),
    _FLOAT: (int, float),
    _BOOL: (bool,),
    _STR: (str,),
    _OPT_STR: (str,),
    _NAMES: (str, list),
}

#: The typed keys: section -> key -> (expected type, default, help).
SCHEMA: dict[str, dict[str, tuple[str, Any, str]]] = {
    section: {
        f.name: (_TYPE_NAMES[str(f.type)], f.default, f.metadata["help"]) for f in fields(cls)
    }
    for section, cls in SECTIONS.items()
}

#: Range and choice rules of the typed keys, checked when the spec is read (before anything is
#: built or written): section -> key -> rules, each returning why a value is refused, or None.
RULES: dict[str, dict[str, tuple[Rule, ...]]] = {
    section: {f.name: f.metadata["rules"] for f in fields(cls) if f.metadata["rules"]}
    for section, cls in SECTIONS.items()
}


def defaults() -> dict[str, dict[str, Any]]:
    """Every typed key at its default, and empty component sections."""
    data: dict[str, dict[str, Any]] = {
        section: {key: default for key, (_, default, _) in keys.items()}
        for section, keys in SCHEMA.items()
    }
    for section in COMPONENTS:
        data[section] = {"name": None}
    data[LOGGER_OPTIONS] = {}
    data["objective"]["name"] = "fmicl"
    data["architecture"]["name"] = "simclr"
    return data


# ------------------------------------------------------------------------------ checking


def typename(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )


def _unknown_section(section: str, where: str) -> SpecError:
    sections = [*SCHEMA, *COMPONENTS, LOGGER_OPTIONS]
    hint = difflib.get_close_matches(section, sections, n=1)
    return SpecError(
        f"{where}: unknown section [{section}]"
        + (f" (did you mean [{hint[0]}]?)" if hint else "")
        + f"; sections: {', '.join(sections)}"
    )


def check(section: str, key: str, value: Any, where: str) -> Any:
    """``value`` of ``section.key`` as the spec keeps it (a number as a float), or a
    :class:`SpecError` naming ``where``, the key, and the expected type or range."""
    if section == LOGGER_OPTIONS:
        if not isinstance(value, dict):
            raise SpecError(
                f"{where}: logger.{key} must be a table of the options of logger {key!r} "
                f"([logger.{key}] in a file, --set 'logger.{key}={{option=value}}'), got "
                f"{typename(value)} {value!r}"
            )
        return value  # the logger's factory checks them when the run starts
    if section not in SCHEMA and section not in COMPONENTS:
        raise _unknown_section(section, where)
    if section in COMPONENTS:
        if key == "name" and not (value is None or isinstance(value, str)):
            raise SpecError(f"{where}: {section}.name must be a string, got {typename(value)}")
        return value  # options: the factory checks them when it is built
    keys = SCHEMA[section]
    if section == "data" and key not in keys:
        return value  # an option of the data set's factory (image_size=...), checked there
    if key not in keys:
        hint = difflib.get_close_matches(key, keys, n=1)
        raise SpecError(
            f"{where}: unknown key {section}.{key}"
            + (f" (did you mean {section}.{hint[0]}?)" if hint else "")
            + f"; keys of [{section}]: {', '.join(keys)}"
        )
    expected = keys[key][0]
    ok = isinstance(value, _TYPES[expected]) and not (expected != _BOOL and isinstance(value, bool))
    if not ok:
        raise SpecError(
            f"{where}: {section}.{key} must be {'an' if expected[0] in 'aeiou' else 'a'} "
            f"{expected}, got {typename(value)} {value!r}"
        )
    value = float(value) if expected == _FLOAT else value
    for rule in RULES[section].get(key, ()):
        problem = rule(value)
        if problem is not None:
            raise SpecError(f"{where}: {section}.{key} {problem}, got {value!r}")
    return value


def validate(data: dict[str, dict[str, Any]], where: str) -> None:
    """The rules that involve several keys, checked once every override is applied: a warm-up
    longer than the run is warned about (``SpecWarning``), not refused, so that a short run of
    a longer spec (``--set train.epochs=3``) still works."""
    train = data["train"]
    if train["warmup_epochs"] > train["epochs"]:
        warnings.warn(
            f"{where}: train.warmup_epochs ({train['warmup_epochs']:g}) is longer than the run "
            f"(train.epochs = {train['epochs']}): the learning rate never reaches train.lr "
            f"({train['lr']:g}); shorten the warm-up or train longer",
            SpecWarning,
            stacklevel=3,
        )
