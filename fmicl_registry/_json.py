"""Strict JSON, as every report file and ``fmicl ... --json`` writes it."""

from __future__ import annotations

import json
import math
from typing import Any


def jsonable(value: Any) -> Any:
    """Strict-JSON data: infinite floats become ``"inf"``/``"-inf"``, NaN ``"nan"``, tuples
    lists and keys strings.

    Example:
        >>> jsonable({"a": float("-inf"), 1: (float("nan"), 2.5)})
        {'a': '-inf', '1': ['nan', 2.5]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps`` of :func:`jsonable` data, refusing anything that is not strict JSON."""
    return json.dumps(jsonable(value), allow_nan=False, **options)
