"""The resolved spec: every default a run uses, written out.

A spec names what differs from the defaults; the run uses the rest without saying so: the
architecture's default backbone, each factory's default options, the data set's augmentation
recipe. :func:`resolve` fills them in from the registered factories' signatures, so
``spec.toml`` (and ``fmicl train --print-spec``) shows exactly what ran. A default of ``None``
means the factory chooses (``cifar_stem``: by the image height); TOML has no null, so those
keys are listed in a comment of their section instead. Building from the resolved spec makes
the same run as building from the spec it came from (a test trains both).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .schema import SCHEMA
from .spec import Spec

#: Arguments the build passes itself, not options of the spec: kind -> names.
_FIXED = {
    "datasets": {"root", "split", "download"},
    "backbones": {"input_shape"},
    "architectures": {"backbone", "objective"},
    "augmentations": {"input_shape", "mean", "std"},
}


def resolve(spec: Spec, *, backbone: str, recipe: str | None, batched: bool | None = None) -> Spec:
    """``spec`` with every default filled in: ``backbone`` and ``recipe`` (None for a text
    run, which has no augmentation) are the names the build chose, ``batched`` whether the
    recipe runs batched on the device (None: unknown, not recorded); each component's options
    get their factory's defaults. A relative ``data.root`` or ``data.eval_root`` becomes
    absolute (a run folder is read from anywhere).

    Example:
        >>> from fmicl_registry.training import load_spec
        >>> from fmicl_registry.training.resolve import resolve
        >>> spec = resolve(load_spec(None, ["architecture.name=simclr"]),
        ...                backbone="small_cnn", recipe="digits", batched=True)
        >>> spec["backbone"], spec["architecture"]["out_dim"], spec["augment"]["batched"]
        ({'name': 'small_cnn', 'width': 32, 'output_dim': 128}, 512, True)
        >>> spec.comments["architecture"]
        'hidden_dim: not set, the component chooses'
    """
    from ..components import ComponentSpec, registry

    data = copy.deepcopy(spec.data)
    comments: dict[str, str] = {}
    for section, keys in SCHEMA.items():  # typed keys whose default is "not set"
        unset = [f"{key} not set: {keys[key][2]}" for key, v in data[section].items() if v is None]
        if unset:
            comments[section] = "\n".join(unset)
    table = registry()

    def fill(section: str, kind: str, name: str, extra: dict[str, Any] | None = None) -> None:
        given = data[section]
        registered = table.get(kind, name)
        assert isinstance(registered, ComponentSpec)  # not a divergence
        factory = registered.factory
        defaults, automatic = _defaults(factory, _FIXED.get(kind, set()))
        if section == "data":
            given_options = {k for k in given if k not in SCHEMA["data"]}
            resolved = {**given, **{k: v for k, v in defaults.items() if k not in given}}
        else:
            given_options = set(given) - {"name"}
            resolved = {"name": name, **{k: v for k, v in given.items() if k != "name"}}
            resolved.update({k: v for k, v in defaults.items() if k not in given})
        resolved.update({k: v for k, v in (extra or {}).items() if k not in given})
        data[section] = resolved
        unset = [k for k in automatic if k not in given_options]
        if unset:
            note = f"{', '.join(unset)}: not set, the component chooses"
            comments[section] = f"{comments[section]}\n{note}" if section in comments else note

    fill("data", "datasets", spec.dataset.name)
    fill("backbone", "backbones", backbone)
    architecture, objective = spec.architecture.name, spec.objective.name
    assert architecture is not None and objective is not None  # the schema's defaults
    fill("architecture", "architectures", architecture)
    fill("objective", "objectives", objective)
    if recipe is not None:
        fill("augment", "augmentations", recipe, {} if batched is None else {"batched": batched})
    for key in ("root", "eval_root"):
        folder = data["data"].get(key)
        if isinstance(folder, str) and folder and not Path(folder).expanduser().is_absolute():
            data["data"][key] = str(Path(folder).resolve())
    return Spec(data, source=spec.source, comments=comments)


def _defaults(factory: Callable[..., Any], fixed: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The keyword defaults of ``factory`` as TOML values, and the options whose default is
    None (or has no TOML form), which the factory chooses itself."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature: nothing to fill in
        return {}, []
    values: dict[str, Any] = {}
    automatic: list[str] = []
    for parameter in parameters:
        if parameter.name in fixed or parameter.kind not in (
            parameter.POSITIONAL_OR_KEYWORD,
            parameter.KEYWORD_ONLY,
        ):
            continue
        if parameter.default is parameter.empty:
            continue
        value = _toml(parameter.default)
        if value is None:
            automatic.append(parameter.name)
        else:
            values[parameter.name] = value
    return values, automatic


def _toml(value: Any) -> Any:
    """``value`` as a spec holds it (tuples as lists), or None when TOML cannot say it."""
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        items = [_toml(v) for v in value]
        return None if any(v is None for v in items) else items
    return None
