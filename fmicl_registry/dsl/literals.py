"""What a parameter of a generator may be called and hold, checked without sympy or torch.

The registry checks every divergence registration with these (``fmicl list divergences``
imports neither sympy nor torch); the parser uses them too, so the rules are written once.
"""

from __future__ import annotations

import keyword
import math
import re
from fractions import Fraction

from ..errors import DivergenceSpecError

MAX_LITERAL = 10**12  # magnitude of a number written in the text or given as a parameter
#: The names the grammar reserves: the variable, its functions and constants (the parser's
#: tables; a test keeps the two equal).
RESERVED = frozenset(
    {"u", "log", "exp", "sqrt", "abs", "log1p", "expm1", "sinh", "cosh", "tanh", "atan"}
    | {"asinh", "pi", "E"}
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_FRACTION_TEXT = re.compile(r"\s*-?\d{1,12}(\s*/\s*\d{1,12})?\s*")


def check_parameter_name(name: object) -> None:
    """Refuse a parameter name that is not a short identifier or that shadows the grammar.

    Example:
        >>> check_parameter_name("alpha")
        >>> check_parameter_name("exp")
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.DivergenceSpecError: parameter name 'exp' is reserved ...
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise DivergenceSpecError(
            f"parameter name {name!r} is not a valid name: use letters, digits and _ "
            "(at most 32 characters, not starting with a digit)"
        )
    if name in RESERVED or keyword.iskeyword(name):
        raise DivergenceSpecError(
            f"parameter name {name!r} is reserved (the variable u, a function or a constant); "
            "choose another name"
        )


def exact_fraction(value: object, what: str) -> Fraction:
    """The exact value of a parameter given as an int, a float, a ``Fraction`` or ``'p/q'``.

    Example:
        >>> exact_fraction(0.1, "a"), exact_fraction("3/2", "a")
        (Fraction(1, 10), Fraction(3, 2))
    """
    if isinstance(value, bool):
        raise DivergenceSpecError(f"{what} must be a number, not a boolean ({value!r})")
    try:
        if isinstance(value, int | Fraction):
            number = Fraction(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise DivergenceSpecError(f"{what} must be finite, got {value!r}")
            number = Fraction(repr(value))
        elif isinstance(value, str) and _FRACTION_TEXT.fullmatch(value):
            number = Fraction(value.replace(" ", ""))
        else:
            raise DivergenceSpecError(
                f"{what} must be a number (int, float or a fraction like '3/2'), got {value!r}"
            )
    except ZeroDivisionError:
        raise DivergenceSpecError(f"{what} divides by zero: {value!r}") from None
    if abs(number) > MAX_LITERAL:
        raise DivergenceSpecError(f"{what} is too large ({value!r}); at most {MAX_LITERAL:g}")
    return number
