"""Experiment specs: a TOML file, checked key by key, with ``--set section.key=value`` overrides.

A spec has fixed sections with typed keys (``run``, ``data``, ``train``, ``eval``) and component
sections (``backbone``, ``architecture``, ``objective``, ``augment``): a ``name`` plus any
options, which the component's factory checks when it is built (``data`` also passes its other
keys, ``image_size`` say, to the data set's factory; ``data.eval_name`` names another data set
for evaluation, e.g. ``stsb`` after pretraining on ``textlines``). Unknown keys and wrong types
are refused with the file, the key and the expected type. Nothing in a spec is executed. The
keys, their types, defaults and rules are listed in :mod:`.schema`.

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
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from .._toml import loads_toml, read_toml
from ..errors import SpecError
from .schema import (
    COMPONENTS,
    LOGGER_OPTIONS,
    RULES,
    SCHEMA,
    Component,
    DataSection,
    EvalSection,
    RunSection,
    SpecWarning,
    TrainSection,
    check,
    defaults,
    typename,
    validate,
)

__all__ = [
    "RULES",
    "SCHEMA",
    "Component",
    "DataSection",
    "EvalSection",
    "RunSection",
    "Spec",
    "SpecError",
    "SpecWarning",
    "TrainSection",
    "load_spec",
    "parse_override",
    "spec_from_toml",
]

_Section = TypeVar("_Section")


@dataclass
class Spec:
    """A checked experiment spec.

    Its typed sections are read as attributes (``spec.train.epochs``, ``spec.run.seed``,
    ``spec.eval.knn_k``; ``[data]`` is ``spec.dataset``, because ``spec.data`` is the whole
    resolved spec as plain tables, what ``spec.toml`` and checkpoints record), its components
    as ``spec.objective.name`` and ``spec.objective.options``. ``spec["train"]["epochs"]``
    reads the plain tables too; ``spec.source`` names the file it was read from.
    """

    data: dict[str, dict[str, Any]]
    source: str = "<default>"
    #: Comment lines per section, written by :meth:`to_toml` (the resolved spec's unset keys).
    comments: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.data[section]

    def _section(self, cls: type[_Section], name: str) -> _Section:
        return cls(**{f.name: self.data[name][f.name] for f in fields(cls)})  # type: ignore[arg-type]

    @property
    def run(self) -> RunSection:
        return self._section(RunSection, "run")

    @property
    def dataset(self) -> DataSection:
        """``[data]`` (its typed keys; :meth:`dataset_options` has the others)."""
        return self._section(DataSection, "data")

    @property
    def train(self) -> TrainSection:
        return self._section(TrainSection, "train")

    @property
    def eval(self) -> EvalSection:
        return self._section(EvalSection, "eval")

    @property
    def backbone(self) -> Component:
        return Component(*self.component("backbone"))

    @property
    def architecture(self) -> Component:
        return Component(*self.component("architecture"))

    @property
    def objective(self) -> Component:
        return Component(*self.component("objective"))

    @property
    def augment(self) -> Component:
        """``[augment]``: ``name`` is the recipe, the options go to the augmentation."""
        return Component(*self.component("augment"))

    def dataset_options(self) -> dict[str, Any]:
        """The keys of ``[data]`` that are options of the data set's factory."""
        return {k: v for k, v in self.data["data"].items() if k not in SCHEMA["data"]}

    def component(self, section: str) -> tuple[str | None, dict[str, Any]]:
        """``(name, options)`` of a component section."""
        options = dict(self.data[section])
        return options.pop("name", None), options

    def with_overrides(self, overrides: Sequence[str]) -> Spec:
        """This spec with ``section.key=value`` changes, checked as ``--set`` checks them.

        Example:
            >>> from fmicl_registry.training import load_spec
            >>> load_spec().with_overrides(["train.epochs=3", "objective.gamma=null"]).train.epochs
            3
        """
        if not overrides:
            return self
        data = copy.deepcopy(self.data)
        _apply(data, overrides)
        validate(data, f"{self.source} with --set")
        return Spec(data, source=self.source)

    def to_toml(self) -> str:
        """The resolved spec as TOML (what a run folder keeps as ``spec.toml``)."""
        lines: list[str] = [f"# resolved from {self.source}"]
        for section, values in self.data.items():
            lines.append(f"\n[{section}]")
            if section in self.comments:
                lines.extend(f"# {line}" for line in self.comments[section].splitlines())
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


class _Removed:
    """The value of ``--set section.key=null``: the key goes back to its default."""

    def __repr__(self) -> str:
        return "null"


#: ``--set section.key=null``: remove the key (a typed key gets its default back).
REMOVED: Any = _Removed()


def _merge(data: dict[str, dict[str, Any]], raw: dict[str, Any], where: str) -> None:
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise SpecError(
                f"{where}: {section!r} must be a [section] table, got {typename(values)}"
            )
        for key, value in values.items():
            if value is REMOVED:
                _remove(data, section, key, where)
                continue
            data.setdefault(section, {})[key] = check(section, key, value, where)
        if section in COMPONENTS and "name" in values:
            # a new component name drops the options of the previous one
            data[section] = {k: v for k, v in data[section].items() if k in values}


def _remove(data: dict[str, dict[str, Any]], section: str, key: str, where: str) -> None:
    """``section.key=null``: a typed key back to its default, a component's option (or data
    set option, or a logger's options table) removed so that the factory's default applies, a
    component's name unset."""
    if section in SCHEMA and key in SCHEMA[section]:
        data[section][key] = SCHEMA[section][key][1]
    elif section in COMPONENTS or section in ("data", LOGGER_OPTIONS):
        if key == "name" and section in COMPONENTS:
            data[section] = {"name": defaults()[section]["name"]}  # its options go with it
        else:
            data.setdefault(section, {}).pop(key, None)
    else:
        check(section, key, None, where)  # the unknown-section / unknown-key error


def _apply(data: dict[str, dict[str, Any]], overrides: Sequence[str]) -> None:
    for item in overrides:
        section, key, value = parse_override(item)
        _merge(data, {section: {key: value}}, f"--set {item}")


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"train.epochs=5"`` -> ``("train", "epochs", 5)``.

    The value is read as TOML, and as a plain string when it is not valid TOML (``--set
    objective.divergence=js``); a table sets nested options (``--set
    'objective.similarity_options={scale=0.5}'``); ``null`` removes the key (``--set
    objective.gamma=null``: the factory's default applies; a typed key gets its default).

    Example:
        >>> from fmicl_registry.training.spec import parse_override
        >>> parse_override("train.lr=0.05"), parse_override("objective.divergence=kl")
        (('train', 'lr', 0.05), ('objective', 'divergence', 'kl'))
        >>> parse_override("objective.similarity_options={scale = 0.5}")
        ('objective', 'similarity_options', {'scale': 0.5})
        >>> parse_override("objective.gamma=null")
        ('objective', 'gamma', null)
    """
    target, sep, raw = text.partition("=")
    section, dot, key = target.strip().partition(".")
    if not sep or not dot or not section or not key or "." in key:
        raise SpecError(f"--set {text!r}: expected section.key=value, e.g. --set train.epochs=5")
    if raw.strip() == "null":
        return section, key, REMOVED
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError as err:
        if raw.strip()[:1] in ("{", "[", '"', "'"):  # meant as a table, a list or a string
            raise SpecError(
                f"--set {text!r}: the value is not valid TOML ({err}); a table is written "
                '{key = value, other = 2}, a list [1, 2], a string "text"'
            ) from None
        value = raw.strip()
    return section, key, value


def default_spec_path() -> Path:
    """The embedded default: the digits experiment shipped in ``specs/experiments``."""
    return bundled_specs()["digits"]


def bundled_specs() -> dict[str, Path]:
    """The experiment specs that ship with the package, by name (``cifar10_simclr_resnet18``):
    ``fmicl train NAME`` runs one, ``fmicl specs NAME`` prints it.

    Example:
        >>> from fmicl_registry.training.spec import bundled_specs
        >>> "digits" in bundled_specs(), bundled_specs()["digits"].name
        (True, 'digits.toml')
    """
    folder = resources.files("fmicl_registry.specs") / "experiments"
    found = {
        entry.name.removesuffix(".toml"): Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }
    return dict(sorted(found.items()))


def spec_path(spec: str | Path) -> Path:
    """The file of ``spec``: an existing file, else the name of a bundled spec
    (:func:`bundled_specs`; ``digits`` or ``digits.toml``, when no such file exists)."""
    path = Path(spec)
    if path.is_file():
        return path
    bundled = bundled_specs()
    name = path.name.removesuffix(".toml")
    if str(spec) in (name, f"{name}.toml") and name in bundled:  # a bare name, not a path
        return bundled[name]
    hint = difflib.get_close_matches(name, bundled, n=1)
    what = "is a folder" if path.is_dir() else "does not exist"
    raise SpecError(
        f"spec {str(spec)!r} {what}: give the path of a TOML file, or the name of a bundled "
        f"spec ({', '.join(bundled)})" + (f"; did you mean {hint[0]!r}?" if hint else "")
    )


def load_spec(path: str | Path | None = None, overrides: list[str] | None = None) -> Spec:
    """Read and check a spec (a TOML file, the name of a bundled spec, or ``None``: the digits
    default), then apply ``overrides``.

    Example:
        >>> from fmicl_registry.training import load_spec
        >>> spec = load_spec(None, ["train.epochs=3", "objective.divergence=kl"])
        >>> spec.train.epochs, spec.objective.name, spec.objective.options
        (3, 'fmicl', {'divergence': 'kl', 'alpha': 40.0, 'gamma': 1.0})
    """
    source = default_spec_path() if path is None else spec_path(path)
    raw = read_toml(source, "spec", SpecError)
    if not raw:
        warnings.warn(
            f"{source} sets nothing: the run uses every default (fmicl train --print-spec "
            "shows them)",
            SpecWarning,
            stacklevel=2,
        )
    data = defaults()
    _merge(data, raw, str(source))
    _apply(data, overrides or [])
    validate(data, str(source) + (" with --set" if overrides else ""))
    bundled = {file: name for name, file in bundled_specs().items()}
    if path is None:
        label = "<default digits spec>"
    elif source in bundled:
        label = f"<bundled spec {bundled[source]}>"
    else:
        label = str(path)
    return Spec(copy.deepcopy(data), source=label)


def spec_from_toml(text: str, where: str) -> Spec:
    """A spec from the text of a resolved ``spec.toml`` (``fmicl eval`` and ``--resume``)."""
    data = defaults()
    _merge(data, loads_toml(text, where, SpecError), where)
    validate(data, where)
    return Spec(data, source=where)
