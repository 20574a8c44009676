"""Experiment specs: a TOML file, checked key by key, with ``--set section.key=value`` overrides.

A spec has fixed sections with typed keys (``run``, ``data``, ``train``, ``eval``) and component
sections (``backbone``, ``architecture``, ``objective``, ``augment``): a ``name`` plus any
options, which the component's factory checks when it is built (``data`` also passes its other
keys, ``image_size`` say, to the data set's factory; ``data.eval_name`` names another data set
for evaluation, e.g. ``stsb`` after pretraining on ``textlines``). Unknown keys and wrong types
are refused with the file, the key and the expected type. Nothing in a spec is executed.

Example::

    # my_run.toml
    [objective]
    name = "fmicl"
    divergence = "js"
    alpha = 40.0

    [train]
    epochs = 50

Then ``fmicl train my_run.toml --set objective.divergence=kl --set train.batch_size=128``.
"""

from __future__ import annotations

import copy
import difflib
import math
import tomllib
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .._toml import loads_toml, read_toml
from ..errors import SpecError


class SpecWarning(UserWarning):
    """A spec that runs, but probably not as its author meant."""


_INT, _FLOAT, _BOOL, _STR, _OPT_STR = "integer", "number", "boolean", "string", "string or none"

#: The typed sections: key -> (expected type, default, help).
SCHEMA: dict[str, dict[str, tuple[str, Any, str]]] = {
    "run": {
        "name": (_STR, "run", "name of the run (the run folder is OUT/NAME)"),
        "seed": (_INT, 0, "seed of every random choice (initialisation, batches, augmentations)"),
        "device": (_STR, "auto", "'auto' (cuda when available), 'cpu' or 'cuda'"),
    },
    "data": {
        "name": (_STR, "digits", "registered data set (fmicl list datasets)"),
        "root": (_OPT_STR, None, "where the data lives (default: $FMICL_DATA_DIR or a cache)"),
        "download": (_BOOL, False, "download the data when it is missing"),
        "num_workers": (_INT, 0, "data-loader worker processes"),
        "eval_name": (
            _OPT_STR,
            None,
            "registered data set evaluation reads (default: name; 'stsb' for a text run)",
        ),
        "eval_root": (_OPT_STR, None, "where the evaluation data set lives (default: root)"),
        "eval_split": (_STR, "test", "the split evaluation scores on ('dev' for GLUE's STS-B)"),
    },
    "train": {
        "epochs": (_INT, 100, "pretraining epochs"),
        "batch_size": (_INT, 256, "global batch size (split over processes)"),
        "optimizer": (_STR, "sgd", "'sgd' (momentum), 'adamw' or 'lars'"),
        "lr": (_FLOAT, 0.1, "peak learning rate (after warm-up)"),
        "momentum": (_FLOAT, 0.9, "SGD/LARS momentum"),
        "weight_decay": (_FLOAT, 5e-4, "weight decay"),
        "warmup_epochs": (_FLOAT, 0.0, "linear warm-up, then a cosine schedule to zero"),
        "precision": (_STR, "auto", "'auto' (bfloat16 autocast on GPU), 'fp32' or 'bf16'"),
        "compile": (_BOOL, False, "torch.compile the model"),
        "max_steps": (_INT, 0, "stop after this many steps (0: no limit; for smoke tests)"),
        "log_every": (_INT, 10, "write a metrics line every this many steps"),
        "checkpoint_every": (_INT, 1, "write a checkpoint every this many epochs (and at the end)"),
        "progress": (_BOOL, True, "show a progress bar"),
    },
    "eval": {
        "knn_k": (_INT, 200, "neighbours of the weighted kNN classifier"),
        "knn_temperature": (_FLOAT, 0.1, "temperature of the kNN vote weights"),
        "linear_epochs": (_INT, 100, "epochs of the linear probe on frozen features"),
        "every": (_INT, 0, "kNN accuracy every this many epochs for the curves (0: at the end)"),
        "baselines": (_BOOL, True, "also probe raw inputs and a random (untrained) encoder"),
        "batch_size": (_INT, 512, "batch size of feature extraction"),
    },
}

#: Component sections: a registered ``name`` (None: the default) plus the factory's options.
COMPONENTS: dict[str, str | None] = {
    "backbone": "backbones",
    "architecture": "architectures",
    "objective": "objectives",
    "augment": None,  # options of fmicl_registry.data.get_augmentation; name = recipe
}

_TYPES: dict[str, tuple[type, ...]] = {
    _INT: (int,),
    _FLOAT: (int, float),
    _BOOL: (bool,),
    _STR: (str,),
    _OPT_STR: (str,),
}


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


def _at_least(low: float, *, above: bool = False) -> Any:
    def rule(value: Any) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if value < low or (above and value == low):
            return f"must be {'greater than' if above else 'at least'} {low:g}"
        return None

    return rule


def _below(high: float) -> Any:
    def rule(value: Any) -> str | None:
        return None if value < high else f"must be less than {high:g}"

    return rule


def _one_of(*choices: str) -> Any:
    def rule(value: Any) -> str | None:
        if value in choices:
            return None
        hint = difflib.get_close_matches(value, choices, n=1)
        return f"must be one of {', '.join(map(repr, choices))}" + (
            f" (did you mean {hint[0]!r}?)" if hint else ""
        )

    return rule


#: Range and choice rules of the typed keys, checked when the spec is read (before anything is
#: built or written): section -> key -> rules, each returning why a value is refused, or None.
RULES: dict[str, dict[str, tuple[Any, ...]]] = {
    "run": {
        "name": (_run_name,),
        "seed": (_at_least(0), _below(2**63)),
        "device": (_one_of("auto", "cpu", "cuda"),),
    },
    "data": {"num_workers": (_at_least(0),)},
    "train": {
        "epochs": (_at_least(1),),
        "batch_size": (_at_least(2),),
        "optimizer": (_one_of("sgd", "adamw", "lars"),),
        "lr": (_at_least(0, above=True),),
        "momentum": (_at_least(0), _below(1)),
        "weight_decay": (_at_least(0),),
        "warmup_epochs": (_at_least(0),),
        "precision": (_one_of("auto", "fp32", "bf16"),),
        "max_steps": (_at_least(0),),
        "log_every": (_at_least(1),),
        "checkpoint_every": (_at_least(1),),
    },
    "eval": {
        "knn_k": (_at_least(1),),
        "knn_temperature": (_at_least(0, above=True),),
        "linear_epochs": (_at_least(1),),
        "every": (_at_least(0),),
        "batch_size": (_at_least(1),),
    },
}


def _check_range(section: str, key: str, value: Any, where: str) -> None:
    if value is None:
        return
    for rule in RULES.get(section, {}).get(key, ()):
        problem = rule(value)
        if problem is not None:
            raise SpecError(f"{where}: {section}.{key} {problem}, got {value!r}")


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


@dataclass
class Spec:
    """A checked experiment spec: ``spec["train"]["epochs"]``; ``spec.source`` names its file."""

    data: dict[str, dict[str, Any]]
    source: str = "<default>"

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.data[section]

    def dataset_options(self) -> dict[str, Any]:
        """The keys of ``[data]`` that are options of the data set's factory."""
        return {k: v for k, v in self.data["data"].items() if k not in SCHEMA["data"]}

    def component(self, section: str) -> tuple[str | None, dict[str, Any]]:
        """``(name, options)`` of a component section."""
        options = dict(self.data[section])
        return options.pop("name", None), options

    def to_toml(self) -> str:
        """The resolved spec as TOML (what a run folder keeps as ``spec.toml``)."""
        lines: list[str] = [f"# resolved from {self.source}"]
        for section, values in self.data.items():
            lines.append(f"\n[{section}]")
            for key, value in values.items():
                if value is not None:
                    lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise SpecError(f"cannot write {value!r} to TOML")


def defaults() -> dict[str, dict[str, Any]]:
    """Every typed key at its default, and empty component sections."""
    data: dict[str, dict[str, Any]] = {
        section: {key: default for key, (_, default, _) in keys.items()}
        for section, keys in SCHEMA.items()
    }
    for section in COMPONENTS:
        data[section] = {"name": None}
    data["objective"]["name"] = "fmicl"
    data["architecture"]["name"] = "simclr"
    return data


def _typename(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )


def _check(section: str, key: str, value: Any, where: str) -> Any:
    if section not in SCHEMA and section not in COMPONENTS:
        hint = difflib.get_close_matches(section, [*SCHEMA, *COMPONENTS], n=1)
        raise SpecError(
            f"{where}: unknown section [{section}]"
            + (f" (did you mean [{hint[0]}]?)" if hint else "")
            + f"; sections: {', '.join([*SCHEMA, *COMPONENTS])}"
        )
    if section in COMPONENTS:
        if key == "name" and not (value is None or isinstance(value, str)):
            raise SpecError(f"{where}: {section}.name must be a string, got {_typename(value)}")
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
            f"{where}: {section}.{key} must be a {expected}, got {_typename(value)} {value!r}"
        )
    value = float(value) if expected == _FLOAT else value
    _check_range(section, key, value, where)
    return value


def _merge(data: dict[str, dict[str, Any]], raw: dict[str, Any], where: str) -> None:
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise SpecError(
                f"{where}: {section!r} must be a [section] table, got {_typename(values)}"
            )
        for key, value in values.items():
            data.setdefault(section, {})[key] = _check(section, key, value, where)
        if section in COMPONENTS and "name" in values:
            # a new component name drops the options of the previous one
            data[section] = {k: v for k, v in data[section].items() if k in values}


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"train.epochs=5"`` -> ``("train", "epochs", 5)``; the value is read as TOML, and as a
    plain string when it is not valid TOML (``--set objective.divergence=js``)."""
    target, sep, raw = text.partition("=")
    section, dot, key = target.strip().partition(".")
    if not sep or not dot or not section or not key or "." in key:
        raise SpecError(f"--set {text!r}: expected section.key=value, e.g. --set train.epochs=5")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def default_spec_path() -> Path:
    """The embedded default: the digits experiment shipped in ``specs/experiments``."""
    return Path(str(resources.files("fmicl_registry.specs") / "experiments" / "digits.toml"))


def load_spec(path: str | Path | None = None, overrides: list[str] | None = None) -> Spec:
    """Read and check a spec (``None``: the digits default), then apply ``overrides``.

    Example:
        >>> from fmicl_registry.training import load_spec
        >>> spec = load_spec(None, ["train.epochs=3", "objective.divergence=kl"])
        >>> spec["train"]["epochs"], spec.component("objective")
        (3, ('fmicl', {'divergence': 'kl', 'alpha': 40.0, 'gamma': 1.0}))
    """
    source = default_spec_path() if path is None else Path(path)
    raw = read_toml(source, "spec", SpecError)
    data = defaults()
    _merge(data, raw, str(source))
    for item in overrides or []:
        section, key, value = parse_override(item)
        _merge(data, {section: {key: value}}, f"--set {item}")
    validate(data, str(source) + (" with --set" if overrides else ""))
    return Spec(copy.deepcopy(data), source="<default digits spec>" if path is None else str(path))


def spec_from_toml(text: str, where: str) -> Spec:
    """A spec from the text of a resolved ``spec.toml`` (``fmicl eval`` and ``--resume``)."""
    data = defaults()
    _merge(data, loads_toml(text, where, SpecError), where)
    validate(data, where)
    return Spec(data, source=where)
