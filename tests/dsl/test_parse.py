"""The generator language: what it accepts, exactly, and what it refuses, clearly and fast."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sympy as sp

import fmicl_registry as fm
from fmicl_registry.dsl.parse import U, parse_expression


def test_integer_ratios_stay_exact() -> None:
    expr = parse_expression("5/3*u + 0.25")
    assert expr == sp.Rational(5, 3) * U + sp.Rational(1, 4)
    assert all(not isinstance(a, sp.Float) for a in sp.preorder_traversal(expr))


def test_parameters_are_substituted_exactly() -> None:
    expr = parse_expression("u**a/(a-1)", {"a": sp.Rational(3, 2)})
    assert expr == 2 * U ** sp.Rational(3, 2)


def test_the_whole_grammar() -> None:
    text = (
        "-(u+1)*log((u+1)/2) + exp(-u) - sqrt(u)**3 / abs(u) + cosh(u) + log1p(u) + expm1(u) + pi"
    )
    expr = parse_expression(text)
    u = 1.7
    want = (
        -(u + 1) * sp.log((u + 1) / 2)
        + sp.exp(-u)
        - sp.sqrt(u) ** 3 / u
        + sp.cosh(u)
        + sp.log(1 + u)
        + sp.exp(u)
        - 1
        + sp.pi
    )
    assert float(expr.subs(U, sp.Rational(17, 10))) == pytest.approx(float(want), rel=1e-12)


HOSTILE = [
    "__import__('os').system('touch /tmp/fmicl-pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "u.__class__",
    "open('/etc/passwd').read()",
    "exec('1')",
    "eval('u')",
    "lambda: 1",
    "[u for u in range(9**9)]",
    "9**9**9",
    "2**(2**(2**(2**(2**2))))",
    "10**400",
    "1e400*u",
    "u**100000",
    "'a' * 10**9",
    "(" * 200 + "u" + ")" * 200,
    "u" + "+u" * 1000,
    "u if u else 1",
    "u[0]",
    "u; import os",
    "u\nimport os",
    "f'{u}'",
    "u == 1",
    "b'u'",
    "True * u",
    "1j * u",
    "log(u, base=2)",
    "sympify('u')",
    "Symbol('u')",
    "u @ u",
    "u // 2",
    "u % 2",
    "u ^ 2",
    "ülog(u)",
    "",
    "   ",
    "u +",
    "1/0 * u",
    "log(0) * u",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_refused_quickly_without_running_anything(text: str) -> None:
    marker = Path("/tmp/fmicl-pwned")
    marker.unlink(missing_ok=True)
    start = time.perf_counter()
    with pytest.raises(fm.DivergenceSpecError) as info:
        fm.define_divergence(text, name="hostile")
    assert time.perf_counter() - start < 3.0
    assert not marker.exists()
    assert isinstance(info.value, ValueError)
    assert str(info.value).strip()


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("u^2", "write u**2", 1),
        ("u*log(u) + b", "unknown name 'b'", 11),
        ("u*lgo(u)", "unknown function 'lgo'", 2),
        ("u*log(u, 2)", "exactly one argument", 2),
        ("u + 9**9**9", "too large", 4),
        ("u*log(u) +", "not a valid expression", None),
        ("u.real", "attribute access", 0),
    ],
)
def test_errors_name_the_problem_and_its_position(
    text: str, fragment: str, column: int | None
) -> None:
    with pytest.raises(fm.DivergenceSpecError) as info:
        parse_expression(text)
    assert fragment in str(info.value)
    if column is not None:
        assert info.value.column == column
        assert f"at column {column + 1}" in str(info.value)
        caret_line = str(info.value).splitlines()[-1]
        assert caret_line.index("^") - 4 == column


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"u": 1}, "reserved"),
        ({"log": 1}, "reserved"),
        ({"1a": 1}, "not a valid name"),
        ({"a": "two"}, "must be a number"),
        ({"a": float("nan")}, "finite"),
        ({"a": True}, "boolean"),
        ({"a": 10**20}, "too large"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, object], fragment: str) -> None:
    with pytest.raises(fm.DivergenceSpecError, match=fragment):
        fm.define_divergence("u**2 - 1", params=params)


def test_parameter_fraction_text_is_exact() -> None:
    d = fm.define_divergence("u**a/(a-1)", params={"a": "3/2"}, normalize=True)
    assert d.generator == 2 * U ** sp.Rational(3, 2) - 2


def test_the_light_parameter_checks_reserve_exactly_the_grammars_names() -> None:
    """The registry checks parameter names without sympy (``dsl.literals``); its reserved
    names must be the parser's own functions and constants, or a registration the registry
    accepts would be refused at derivation (or the other way round)."""
    from fmicl_registry.dsl.literals import RESERVED
    from fmicl_registry.dsl.parse import CONSTANTS, FUNCTIONS

    assert set(RESERVED) == {"u", *FUNCTIONS, *CONSTANTS}
