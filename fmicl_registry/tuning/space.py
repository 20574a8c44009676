"""What ``fmicl tune`` searches: one conditional space per objective.

The objective is a categorical choice; each choice has its own dimensions, named
``"<objective>/<option>"`` so that every objective's sampler history stays its own:

- an f-MICL divergence (``js``, ``tsallis``, a plugin's): the objective's ``alpha`` and
  ``gamma`` (the ``fmicl`` objective's registered ``search_space``), the similarity where the
  divergence's conjugate domain allows the cosine critic as well as the f-Gaussian log ratio
  (``gamma`` belongs to the f-Gaussian), and each divergence parameter that declares a range
  (``[params.a] default = 1.5, range = [1.05, 4.0]``): the search moves through the
  continuous family, and every point is derived by the DSL;
- a baseline objective (``infonce``): the options of its registered ``search_space``
  (InfoNCE's ``temperature``).

A point of a family is derived at its value rounded to :data:`DIGITS` significant digits: an
exact fraction with a small denominator, which the DSL derives in seconds and caches.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from ..training.spec import Spec

#: Significant digits of a divergence parameter's value in a trial.
DIGITS = 3

#: The sampled parameter that picks the objective.
OBJECTIVE = "objective"


@dataclass(frozen=True)
class Dimension:
    """One searched number: ``option`` of the objective (or of its divergence) in
    ``[low, high]``, log-uniform when ``log``."""

    label: str
    option: str
    low: float
    high: float
    log: bool = False
    default: float | None = None
    #: ``"objective"``: an option of the objective; ``"divergence"``: a parameter of the
    #: divergence (set through ``objective.divergence_options``).
    target: str = "objective"

    @property
    def name(self) -> str:
        """The trial's parameter name: ``"js/alpha"``, ``"tsallis/a"``."""
        return f"{self.label}/{self.option}"


@dataclass(frozen=True)
class ObjectiveSpace:
    """The conditional space of one objective label of the study."""

    label: str
    #: The objective's registered name (``fmicl`` for every divergence label).
    objective: str
    #: The divergence of an f-MICL label, else None.
    divergence: str | None
    dimensions: tuple[Dimension, ...] = ()
    #: Similarities to choose from (f-MICL); ``gamma`` applies to ``"gaussian"`` only.
    similarities: tuple[str, ...] = ()
    #: The spec's own options of this objective (kept in every trial).
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def similarity_name(self) -> str:
        return f"{self.label}/similarity"

    def sample(self, trial: Any) -> dict[str, Any]:
        """Draw this label's settings from an Optuna ``trial``: ``{option: value}`` with
        the divergence's parameters under ``divergence_options``."""
        options: dict[str, Any] = dict(self.fixed)
        similarity = None
        if len(self.similarities) > 1:
            similarity = trial.suggest_categorical(self.similarity_name, list(self.similarities))
        elif self.similarities:
            similarity = self.similarities[0]
        if similarity is not None and (len(self.similarities) > 1 or "similarity" in options):
            options["similarity"] = similarity
        divergence_options: dict[str, Any] = dict(options.pop("divergence_options", None) or {})
        for dim in self.dimensions:
            if dim.option == "gamma" and similarity not in (None, "gaussian"):
                options.pop("gamma", None)
                continue
            value = trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log)
            if dim.target == "divergence":
                divergence_options[dim.option] = significant(value)
            else:
                options[dim.option] = value
        if divergence_options:
            options["divergence_options"] = divergence_options
        return options

    def default_point(self) -> dict[str, Any]:
        """The trial parameters of the objective's default setting (its first trial's); an
        option with no default in its range takes the range's middle."""
        point: dict[str, Any] = {OBJECTIVE: self.label}
        if len(self.similarities) > 1:
            point[self.similarity_name] = self.similarities[0]
        for dim in self.dimensions:
            if dim.default is not None and dim.low <= dim.default <= dim.high:
                point[dim.name] = dim.default
            else:  # no default, or one outside the range: the range's middle
                middle = math.sqrt(dim.low * dim.high) if dim.log else (dim.low + dim.high) / 2
                point[dim.name] = significant(middle)
        return point

    def overrides(self, options: Mapping[str, Any]) -> list[str]:
        """``--set`` lines that make a spec train this label with ``options``."""
        lines = [f'objective.name="{self.objective}"']
        if self.divergence is not None:
            lines.append(f"objective.divergence={json.dumps(self.divergence)}")
        for key, value in options.items():
            lines.append(f"objective.{key}={toml_value(value)}")
        return lines


def significant(value: float, digits: int = DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (``2.3712 -> 2.37``)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def toml_value(value: Any) -> str:
    """A value as the right side of a ``--set`` line (TOML)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def _ranges(kind: str, name: str) -> dict[str, Any]:
    """The declared search ranges of a registered objective or divergence."""
    from ..components import registry

    entry = registry().get(kind, name)
    return dict(getattr(entry, "search_space" if kind == "objectives" else "ranges", {}) or {})


def _defaults(kind: str, name: str) -> dict[str, Any]:
    from ..components import registry

    factory = getattr(registry().get(kind, name), "factory", None)
    try:
        params = inspect.signature(factory).parameters if factory else {}
    except (TypeError, ValueError):
        return {}
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def build_spaces(labels: Sequence[str], base: Spec) -> dict[str, ObjectiveSpace]:
    """The space of every label of ``--objectives``; an unknown label or one with nothing
    to build is an error naming what there is (checked before anything trains)."""
    from ..components import registry

    reg = registry()
    objectives = set(reg.names("objectives"))
    divergences = set(reg.names("divergences"))
    if not labels:
        raise SpecError("no objectives to tune: give --objectives, e.g. js,kl,infonce")
    if len(set(labels)) != len(labels):
        raise SpecError(f"--objectives names one twice: {', '.join(labels)}")
    spaces = {}
    for label in labels:
        if label in objectives and label != "fmicl":
            spaces[label] = _objective_space(label, base)
        elif label in divergences or label == "fmicl":
            spaces[label] = _fmicl_space(label, base)
        else:
            raise SpecError(
                f"--objectives: {label!r} is neither an objective nor a divergence; "
                f"objectives: {', '.join(sorted(objectives))}; divergences: "
                f"{', '.join(sorted(divergences))}"
            )
    return spaces


def _same_objective(base: Spec, name: str) -> dict[str, Any]:
    return dict(base.objective.options) if base.objective.name == name else {}


def _objective_space(label: str, base: Spec) -> ObjectiveSpace:
    fixed = _same_objective(base, label)
    defaults = {**_defaults("objectives", label), **fixed}
    dims = tuple(
        Dimension(
            label,
            option,
            r.low,
            r.high,
            r.log,
            _number(defaults.get(option)),
        )
        for option, r in _ranges("objectives", label).items()
    )
    searched = {d.option for d in dims}
    return ObjectiveSpace(
        label, label, None, dims, fixed={k: v for k, v in fixed.items() if k not in searched}
    )


def _fmicl_space(label: str, base: Spec) -> ObjectiveSpace:
    from ..components import registry

    fixed = _same_objective(base, "fmicl")
    spec_divergence = fixed.pop("divergence", "js")
    divergence = spec_divergence if label == "fmicl" else label
    if not isinstance(divergence, str):
        raise SpecError("objective.divergence must be a name to be tuned")
    defaults = {**_defaults("objectives", "fmicl"), **fixed}
    if defaults.get("gamma") is None:
        defaults["gamma"] = _defaults("similarities", "gaussian").get("gamma")
    dims = [
        Dimension(label, option, r.low, r.high, r.log, _number(defaults.get(option)))
        for option, r in _ranges("objectives", "fmicl").items()
    ]
    spec = registry().get("divergences", divergence)
    # the spec's divergence options belong to its own divergence
    given = (
        dict(fixed.pop("divergence_options", None) or {}) if divergence == spec_divergence else {}
    )
    params = {**dict(getattr(spec, "params", {})), **given}
    for param, r in _ranges("divergences", divergence).items():
        dims.append(
            Dimension(label, param, r.low, r.high, r.log, _number(params.get(param)), "divergence")
        )
    searched = {d.option for d in dims if d.target == "objective"} | {"similarity"}
    similarity = fixed.get("similarity", "gaussian")
    similarities: tuple[str, ...] = (similarity,)
    if similarity == "gaussian" and _critic_allowed(divergence, given):
        similarities = ("gaussian", "cosine")
    kept = {k: v for k, v in fixed.items() if k not in searched}
    if given:
        kept["divergence_options"] = given
    return ObjectiveSpace(label, "fmicl", divergence, tuple(dims), similarities, kept)


def _critic_allowed(divergence: str, options: Mapping[str, Any]) -> bool:
    """Whether f-MICL accepts the cosine critic with this divergence (its conjugate domain
    holds the critic's values)."""
    from ..errors import FmiclError
    from ..objectives import get_objective

    try:
        get_objective(
            "fmicl", divergence=divergence, similarity="cosine", divergence_options=dict(options)
        )
    except FmiclError:
        return False
    return True


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
