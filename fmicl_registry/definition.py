"""The definition of a divergence: the frozen record everything else is derived from.

A :class:`DivergenceSpec` is what a plugin registers, what a TOML file declares, what a
``Divergence`` carries, pickles as and changes parameters through. Reading and checking one
imports neither sympy nor torch (``fmicl list divergences`` stays fast); deriving it
(``fm.define_divergence(spec)``, in ``divergence.py``) does.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ._toml import read_toml
from .dsl.literals import check_parameter_name, exact_fraction
from .errors import DivergenceSpecError
from .hookspecs import DIVERGENCE_KEYS

#: The rule a registered name follows, for every kind of component.
NAME_RULE = "1-64 letters, digits, '_', '-' or '.'"


def valid_name(name: object) -> bool:
    """Whether ``name`` follows :data:`NAME_RULE`."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 64
        and all(c.isalnum() or c in "_-." for c in name)
    )


#: The keys of a parameter's table (``[params.a]`` in TOML, ``params={"a": {...}}`` in Python).
PARAM_TABLE_KEYS = ("default", "range", "log")
#: Keys people write for the ends of a range; each gets the hint to write ``range = [low, high]``.
_BOUND_WORDS = frozenset(
    {"min", "max", "low", "high", "lower", "upper", "minimum", "maximum", "bounds", "interval"}
)


@dataclass(frozen=True)
class ParamRange:
    """The interval ``[low, high]`` a tuner searches for one parameter of a family; ``log``
    says to search it on a log scale (then ``low > 0``).

    A range is advice for searching, not a limit on the parameter: ``with_params`` and
    ``get_divergence(name, a=...)`` accept values outside it, as before.

    Example:
        >>> from fmicl_registry.definition import ParamRange
        >>> r = ParamRange(1.05, 4.0)
        >>> 1.5 in r, 5 in r
        (True, False)
        >>> ParamRange(4.0, 1.05)
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.DivergenceSpecError: range [4.0, 1.05] is reversed; ...
    """

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        for end in (self.low, self.high):
            if isinstance(end, bool) or not isinstance(end, int | float | Fraction):
                raise DivergenceSpecError(f"range ends must be numbers, got {end!r}")
            if not math.isfinite(end):
                raise DivergenceSpecError(f"range ends must be finite, got {end!r}")
        problem = _range_problem(self.low, self.high)
        if problem:
            raise DivergenceSpecError(problem)
        if not isinstance(self.log, bool):
            raise DivergenceSpecError(f"log must be true or false, got {self.log!r}")
        if self.log and self.low <= 0:
            raise DivergenceSpecError(_log_problem(self.low))
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float | Fraction) and self.low <= value <= self.high

    def as_list(self) -> list[float]:
        """``[low, high]``, as a spec file writes it (``range = [1.05, 4.0]``)."""
        return [self.low, self.high]


def _range_problem(low: Any, high: Any) -> str | None:
    """What is wrong with the ends ``low``, ``high`` of a range (numbers), or None."""
    if low == high:
        return (
            f"range [{low!r}, {high!r}] is empty (low == high); to fix the parameter at "
            f"{low!r} give it no range, else widen the range"
        )
    if low > high:
        return (
            f"range [{low!r}, {high!r}] is reversed; write range = [{high!r}, {low!r}] (low first)"
        )
    return None


def _log_problem(low: Any) -> str:
    return (
        f"log = true needs a range of positive numbers, but its low end is {low!r}; "
        "raise the low end above 0 or drop log = true"
    )


@dataclass(frozen=True)
class DivergenceSpec:
    """A divergence's definition: the text of its generator ``f(u)`` and what goes with it.

    ``generator`` is the text (parsed safely, never evaluated); ``params`` the values of the
    parameter names it uses (their defaults); ``normalize`` subtracts ``f(1)``; ``plugin``
    says where the definition comes from (a plugin's name, ``"user"`` or a file); ``ranges``
    the search range (a :class:`ParamRange`) of each parameter that declares one, for a tuner
    to move through the family (``range = [low, high]`` in a spec file).

    Example:
        >>> import fmicl_registry as fm
        >>> spec = fm.registry().get("divergences", "tsallis")
        >>> spec.params
        {'a': 1.5}
        >>> spec.ranges
        {'a': ParamRange(low=1.05, high=4.0, log=False)}
        >>> fm.define_divergence(spec.with_params(a=2)).generator
        u**2 - 1
    """

    name: str
    generator: str
    params: dict[str, Any] = field(default_factory=dict)
    normalize: bool = False
    description: str = ""
    reference: str = ""
    plugin: str = "user"
    ranges: dict[str, ParamRange] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.ranges.items():
            if not isinstance(value, ParamRange):
                raise DivergenceSpecError(
                    f"divergence {self.name!r}: the range of {key!r} must be a ParamRange, "
                    f"got {type(value).__name__} {value!r}"
                )
            if key not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise DivergenceSpecError(
                    f"divergence {self.name!r}: a range for {key!r}, which is not one of its "
                    f"parameters (its parameters: {known}); give {key!r} a default too"
                )

    def with_params(self, **params: Any) -> DivergenceSpec:
        """The same definition with some parameters changed (the ranges stay: a value outside
        its range is allowed); an unknown one is an error naming the parameters there are."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise DivergenceSpecError(
                f"divergence {self.name!r} has no parameter {unknown[0]!r} "
                f"(its parameters: {known})"
            )
        return dataclasses.replace(self, params={**self.params, **params})

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the ``register`` callback of ``register_divergences``: a
        parameter with a range as its table (``{"default": 1.5, "range": [1.05, 4.0]}``)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del fields["plugin"], fields["ranges"]
        fields["params"] = {key: self._param_entry(key) for key in self.params}
        return fields

    def _param_entry(self, key: str) -> Any:
        found = self.ranges.get(key)
        if found is None:
            return self.params[key]
        entry = {"default": self.params[key], "range": found.as_list()}
        return {**entry, "log": True} if found.log else entry


def spec_from_mapping(data: Mapping[str, Any], where: str, plugin: str) -> DivergenceSpec:
    """Check a registration or a TOML table and make its :class:`DivergenceSpec`; a
    ``DivergenceSpecError`` that starts with ``where`` says what is wrong."""
    data = {k: v for k, v in data.items() if not (k == "params" and v is None)}  # None: none
    for key, value in data.items():
        if key not in DIVERGENCE_KEYS:
            allowed = ", ".join(DIVERGENCE_KEYS)
            raise DivergenceSpecError(f"{where}: unknown key {key!r} (allowed: {allowed})")
        expected, words = DIVERGENCE_KEYS[key]
        if not isinstance(value, expected):
            raise DivergenceSpecError(
                f"{where}: key {key!r} must be {words}, got {type(value).__name__} {value!r}"
            )
    for key in ("name", "generator"):
        if key not in data:
            raise DivergenceSpecError(f"{where}: missing key {key!r}")
    name = data["name"].strip()
    if not valid_name(name):
        raise DivergenceSpecError(f"{where}: name {name!r} must be {NAME_RULE}")
    params: dict[str, Any] = {}
    ranges: dict[str, ParamRange] = {}
    for key, value in data.get("params", {}).items():
        try:
            check_parameter_name(key)
        except DivergenceSpecError as err:
            raise DivergenceSpecError(f"{where}: {err}") from None
        what = f"{where}: parameter {key!r}"
        if isinstance(value, Mapping):
            params[key], found = _param_table(value, what)
            if found is not None:
                ranges[key] = found
        else:
            exact_fraction(value, what)
            params[key] = value
    return DivergenceSpec(
        name=name,
        generator=data["generator"],
        params=params,
        normalize=data.get("normalize", False),
        description=data.get("description", ""),
        reference=data.get("reference", ""),
        plugin=plugin,
        ranges=ranges,
    )


def _param_table(table: Mapping[str, Any], what: str) -> tuple[Any, ParamRange | None]:
    """The default and the range (or None) of a parameter given as a table
    (``{"default": 1.5, "range": [1.05, 4.0], "log": false}``); ``what`` starts each error."""
    for key in table:
        if key in PARAM_TABLE_KEYS:
            continue
        allowed = ", ".join(PARAM_TABLE_KEYS)
        if isinstance(key, str) and key.lower() in _BOUND_WORDS:
            hint = "write the ends of the search range as range = [low, high], e.g. [1.05, 4.0]"
        elif close := difflib.get_close_matches(str(key), PARAM_TABLE_KEYS, n=1):
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = "remove it"
        raise DivergenceSpecError(f"{what}: unknown key {key!r} (allowed: {allowed}); {hint}")
    if "default" not in table:
        raise DivergenceSpecError(
            f"{what}: its table has no 'default'; add default = <number>, the value used "
            "when none is given (e.g. default = 1.5)"
        )
    default = table["default"]
    value = exact_fraction(default, f"{what}: default")
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise DivergenceSpecError(f"{what}: log must be true or false, got {log!r}")
    if "range" not in table:
        if log:
            raise DivergenceSpecError(
                f"{what}: log = true without a range; add range = [low, high] or drop log"
            )
        return default, None
    low, high = _range_ends(table["range"], what)
    problem = _range_problem(low, high)
    if problem:
        raise DivergenceSpecError(f"{what}: {problem}")
    if log and low <= 0:
        raise DivergenceSpecError(f"{what}: {_log_problem(low)}")
    if not exact_fraction(low, what) <= value <= exact_fraction(high, what):
        raise DivergenceSpecError(
            f"{what}: default {default!r} is outside its range [{low!r}, {high!r}]; "
            "change the default or widen the range"
        )
    return default, ParamRange(float(low), float(high), log)


def _range_ends(value: Any, what: str) -> tuple[int | float | Fraction, int | float | Fraction]:
    """The two ends of ``range = [low, high]``, each a finite number; ``what`` starts the error."""
    example = "e.g. range = [1.05, 4.0]"
    if not isinstance(value, list | tuple):
        raise DivergenceSpecError(
            f"{what}: range must be two numbers [low, high], got {type(value).__name__} "
            f"{value!r}; {example}"
        )
    if len(value) != 2:
        hint = " (put the default in default = ..., not in the range)" if len(value) == 3 else ""
        raise DivergenceSpecError(
            f"{what}: range must be two numbers [low, high], got {len(value)}: "
            f"{list(value)!r}{hint}; {example}"
        )
    for end in value:
        if isinstance(end, bool):
            raise DivergenceSpecError(
                f"{what}: range ends must be numbers, not booleans ({end!r}); {example}"
            )
        if isinstance(end, str):
            raise DivergenceSpecError(
                f"{what}: range ends must be numbers, got the string {end!r}; write it "
                f"without quotes, {example}"
            )
        if not isinstance(end, int | float | Fraction):
            raise DivergenceSpecError(
                f"{what}: range ends must be numbers, got {type(end).__name__} {end!r}; {example}"
            )
        if isinstance(end, float) and not math.isfinite(end):
            raise DivergenceSpecError(
                f"{what}: range ends must be finite, got {end!r}; a tuner needs both ends, "
                "so write the largest (or smallest) value worth trying"
            )
        exact_fraction(end, f"{what}: range end")  # at most MAX_LITERAL, like a parameter
    return value[0], value[1]


def load_divergence_spec(path: str | Path, *, plugin: str = "user") -> DivergenceSpec:
    """Read a divergence declared in a TOML file (nothing in it is executed).

    The file has the keys ``name``, ``generator`` and optionally ``normalize``,
    ``description``, ``reference`` and a ``[params]`` table of defaults::

        name = "tsallis"
        generator = "u**a/(a-1)"
        normalize = true
        description = "Tsallis entropy family"
        reference = "Lu et al. 2023, Table 1"

        [params]
        a = 1.5

    A parameter may instead have a table of its own, to declare the range a tuner searches
    (``spec.ranges``; ``log = true`` searches it on a log scale)::

        [params.a]
        default = 1.5
        range = [1.05, 4.0]

    Example:
        >>> import fmicl_registry as fm, pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "sq.toml"
        >>> _ = path.write_text('name = "sq"\\ngenerator = "(u-1)**2"\\n')
        >>> fm.load_divergence_spec(path).generator
        '(u-1)**2'
        >>> _ = path.write_text('name = "alpha"\\n'
        ...     'generator = "(u**a - a*u + a - 1)/(a*(a - 1))"\\n'
        ...     '[params.a]\\ndefault = 0.5\\nrange = [0.1, 0.9]\\n')
        >>> spec = fm.load_divergence_spec(path)
        >>> spec.params, spec.ranges["a"]
        ({'a': 0.5}, ParamRange(low=0.1, high=0.9, log=False))
    """
    path = Path(path)
    data = read_toml(path, "divergence spec", DivergenceSpecError)
    return spec_from_mapping(data, str(path), plugin)
