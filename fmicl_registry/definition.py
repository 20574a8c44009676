"""The definition of a divergence: the frozen record everything else is derived from.

A :class:`DivergenceSpec` is what a plugin registers, what a TOML file declares, what a
``Divergence`` carries, pickles as and changes parameters through. Reading and checking one
imports neither sympy nor torch (``fmicl list divergences`` stays fast); deriving it
(``fm.define_divergence(spec)``, in ``divergence.py``) does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class DivergenceSpec:
    """A divergence's definition: the text of its generator ``f(u)`` and what goes with it.

    ``generator`` is the text (parsed safely, never evaluated); ``params`` the values of the
    parameter names it uses; ``normalize`` subtracts ``f(1)``; ``plugin`` says where the
    definition comes from (a plugin's name, ``"user"`` or a file).

    Example:
        >>> import fmicl_registry as fm
        >>> spec = fm.registry().get("divergences", "tsallis")
        >>> spec.params
        {'a': 1.5}
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

    def with_params(self, **params: Any) -> DivergenceSpec:
        """The same definition with some parameters changed; an unknown one is an error
        naming the parameters there are."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise DivergenceSpecError(
                f"divergence {self.name!r} has no parameter {unknown[0]!r} "
                f"(its parameters: {known})"
            )
        return dataclasses.replace(self, params={**self.params, **params})

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the ``register`` callback of ``register_divergences``."""
        fields = dataclasses.asdict(self)
        del fields["plugin"]
        return fields


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
    params = dict(data.get("params", {}))
    for key, value in params.items():
        check_parameter_name(key)
        exact_fraction(value, f"{where}: parameter {key!r}")
    return DivergenceSpec(
        name=name,
        generator=data["generator"],
        params=params,
        normalize=data.get("normalize", False),
        description=data.get("description", ""),
        reference=data.get("reference", ""),
        plugin=plugin,
    )


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

    Example:
        >>> import fmicl_registry as fm, pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "sq.toml"
        >>> _ = path.write_text('name = "sq"\\ngenerator = "(u-1)**2"\\n')
        >>> fm.load_divergence_spec(path).generator
        '(u-1)**2'
    """
    path = Path(path)
    data = read_toml(path, "divergence spec", DivergenceSpecError)
    return spec_from_mapping(data, str(path), plugin)
