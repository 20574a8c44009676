"""Safe parsing of a generator text into a sympy expression.

The text is read by Python's ``ast`` parser and walked with a whitelist: numbers, the variable
``u``, declared parameter names, ``+ - * / **``, unary signs, parentheses and a fixed table of
functions. Nothing is ever handed to ``eval``, ``exec``, ``sympify`` or ``parse_expr``; sympy
objects are built node by node, and numeric sub-expressions are size-checked *before* sympy
evaluates them, so ``9**9**9`` is refused rather than computed.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from fractions import Fraction

import sympy as sp

from ..errors import DivergenceSpecError
from .literals import MAX_LITERAL, check_parameter_name, exact_fraction

#: The variable of a generator: the density ratio ``u > 0``.
U = sp.Symbol("u", positive=True)

MAX_LENGTH = 500
MAX_NODES = 200
MAX_DEPTH = 30
MAX_CONSTANT = 1e30  # magnitude of any constant sub-expression
MAX_EXPONENT = 64  # magnitude of a numeric exponent

FUNCTIONS: dict[str, tuple[Callable[[sp.Expr], sp.Expr], str]] = {
    "log": (sp.log, "natural logarithm"),
    "exp": (sp.exp, "exponential"),
    "sqrt": (sp.sqrt, "square root"),
    "abs": (sp.Abs, "absolute value"),
    "log1p": (lambda z: sp.log(1 + z), "log(1 + z)"),
    "expm1": (lambda z: sp.exp(z) - 1, "exp(z) - 1"),
    "sinh": (sp.sinh, "hyperbolic sine"),
    "cosh": (sp.cosh, "hyperbolic cosine"),
    "tanh": (sp.tanh, "hyperbolic tangent"),
    "atan": (sp.atan, "arc tangent"),
    "asinh": (sp.asinh, "inverse hyperbolic sine"),
}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}


def exact_number(value: object, what: str) -> sp.Rational:
    """An exact sympy Rational for a parameter value (int, float, Fraction, sympy Rational or
    'p/q' text); the rules are :func:`~fmicl_registry.dsl.literals.exact_fraction`'s."""
    if isinstance(value, sp.Rational):
        value = Fraction(int(value.p), int(value.q))
    number = exact_fraction(value, what)
    return sp.Rational(number.numerator, number.denominator)


class _Builder:
    def __init__(self, text: str, names: Mapping[str, sp.Expr]):
        self.text = text
        self.names = names
        self.nodes = 0
        self.used: set[str] = set()

    def fail(self, message: str, node: ast.AST | None) -> DivergenceSpecError:
        column = getattr(node, "col_offset", None) if node is not None else None
        return DivergenceSpecError(message, text=self.text, column=column)

    def checked(self, value: sp.Expr, node: ast.AST) -> sp.Expr:
        if value.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise self.fail("this part is infinite or undefined (a division by zero?)", node)
        if value.is_number:
            if value.is_real is False:
                raise self.fail("this constant is not a real number", node)
            magnitude = abs(complex(value.evalf(20)))
            if not magnitude <= MAX_CONSTANT:
                raise self.fail(f"constant too large (more than {MAX_CONSTANT:g})", node)
        return value

    def build(self, node: ast.AST, depth: int) -> sp.Expr:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"expression too long (more than {MAX_NODES} parts)", node)
        if depth > MAX_DEPTH:
            raise self.fail(f"expression nested too deeply (more than {MAX_DEPTH} levels)", node)
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            if node.id in self.names:
                self.used.add(node.id)
                return self.names[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id in FUNCTIONS:
                raise self.fail(f"{node.id} is a function: write {node.id}(...)", node)
            declared = ", ".join(sorted(n for n in self.names if n != "u")) or "none"
            raise self.fail(
                f"unknown name {node.id!r}: a generator uses u, declared parameters "
                f"(here: {declared}) and the constants pi, E",
                node,
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.build(node.operand, depth + 1)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise self.fail(self.describe_refusal(node), node)

    def number(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{value!r} is not a number; only numbers and names are allowed", node)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail("number out of range", node)
        if abs(value) > MAX_LITERAL:
            raise self.fail(f"number too large (at most {MAX_LITERAL:g})", node)
        if isinstance(value, int):
            return sp.Integer(value)
        # The decimal text the user wrote becomes an exact rational: 0.5 -> 1/2.
        return sp.Rational(repr(value))

    def binop(self, node: ast.BinOp, depth: int) -> sp.Expr:
        if isinstance(node.op, ast.BitXor):
            caret = ast.Constant(0, col_offset=self.operator_column(node))
            raise self.fail("'^' is not a power here: write u**2 for u squared", caret)
        ops: dict[type, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
            ast.Add: lambda a, b: a + b,
            ast.Sub: lambda a, b: a - b,
            ast.Mult: lambda a, b: a * b,
            ast.Div: lambda a, b: a / b,
        }
        left = self.build(node.left, depth + 1)
        right = self.build(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return self.checked(self.power(left, right, node), node)
        op = ops.get(type(node.op))
        if op is None:
            raise self.fail(
                f"operator {type(node.op).__name__} is not allowed; use + - * / **", node
            )
        if isinstance(node.op, ast.Div) and right.is_zero:
            slash = ast.Constant(0, col_offset=self.operator_column(node))
            raise self.fail("division by zero", slash)
        return self.checked(op(left, right), node)

    def operator_column(self, node: ast.BinOp) -> int:
        """The column of a binary operator: the first non-blank after the left operand."""
        column = node.left.end_col_offset or node.col_offset
        while column < len(self.text) and self.text[column] in " )":
            column += 1
        return column

    def power(self, base: sp.Expr, exponent: sp.Expr, node: ast.BinOp) -> sp.Expr:
        if exponent.is_number:
            magnitude = abs(float(exponent.evalf(20)))
            if magnitude > MAX_EXPONENT:
                raise self.fail(f"exponent too large (at most {MAX_EXPONENT} in magnitude)", node)
            if base.is_number:
                b = abs(float(base.evalf(20)))
                if b == 0 and float(exponent.evalf(20)) < 0:
                    raise self.fail("division by zero (0 to a negative power)", node)
                if b > 0 and magnitude * abs(math.log10(b)) > math.log10(MAX_CONSTANT):
                    raise self.fail(f"constant too large (more than {MAX_CONSTANT:g})", node)
        result = sp.Pow(base, exponent)
        merged = result.as_base_exp()[1] if result.is_Pow else sp.Integer(1)
        if merged.is_number and abs(float(merged.evalf(20))) > MAX_EXPONENT:
            # (u**64)**64 merges into u**4096: refuse the merged power too.
            raise self.fail(f"exponent too large (at most {MAX_EXPONENT} in magnitude)", node)
        return result

    def call(self, node: ast.Call, depth: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only the listed functions can be called", node)
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.fail(
                f"unknown function {name!r}; available: {', '.join(sorted(FUNCTIONS))}", node
            )
        if node.keywords or len(node.args) != 1:
            raise self.fail(f"{name}() takes exactly one argument", node)
        argument = self.build(node.args[0], depth + 1)
        return self.checked(FUNCTIONS[name][0](argument), node)

    @staticmethod
    def describe_refusal(node: ast.AST) -> str:
        kind = type(node).__name__
        hints = {
            "Attribute": "attribute access (a.b) is not allowed",
            "Subscript": "indexing (a[b]) is not allowed",
            "Compare": "comparisons are not allowed",
            "BoolOp": "and/or are not allowed",
            "Lambda": "lambda is not allowed",
            "Tuple": "a generator is one expression, not a tuple",
            "List": "lists are not allowed",
            "Dict": "dicts are not allowed",
            "IfExp": "conditional expressions are not allowed",
        }
        return hints.get(kind, f"{kind} is not allowed in a generator") + (
            "; a generator uses numbers, u, parameters, + - * / ** and functions"
        )


def parse_expression(text: str, parameters: Mapping[str, sp.Expr] | None = None) -> sp.Expr:
    """Parse ``text`` into a sympy expression in ``U`` and the given parameter symbols.

    ``parameters`` maps each declared parameter name to the sympy object that stands for it (a
    symbol, or an exact number to substitute). Raises ``DivergenceSpecError`` on anything else.

    Example:
        >>> parse_expression("u*log(u) + 5/3")
        u*log(u) + 5/3
    """
    if not isinstance(text, str):
        raise DivergenceSpecError(f"a generator must be text, got {type(text).__name__}")
    if not text.strip():
        raise DivergenceSpecError("the generator is empty; write an expression in u, e.g. u*log(u)")
    if len(text) > MAX_LENGTH:
        raise DivergenceSpecError(
            f"generator text too long ({len(text)} characters, at most {MAX_LENGTH})"
        )
    for column, char in enumerate(text):
        if not (char.isascii() and (char.isprintable() or char in " \t")):
            raise DivergenceSpecError(
                f"character {char!r} is not allowed", text=text, column=column
            )
    if text.count("(") > MAX_DEPTH:
        raise DivergenceSpecError(f"too many parentheses (at most {MAX_DEPTH})", text=text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        column = (err.offset or 1) - 1
        raise DivergenceSpecError(
            f"not a valid expression: {err.msg}", text=text.strip(), column=column
        ) from None
    except (MemoryError, RecursionError, ValueError):
        raise DivergenceSpecError("not a valid expression", text=text) from None
    names: dict[str, sp.Expr] = {"u": U}
    for name, value in (parameters or {}).items():
        check_parameter_name(name)
        names[name] = value
    builder = _Builder(text.strip(), names)
    expr = builder.build(tree.body, 0)
    unused = sorted(set(parameters or {}) - builder.used)
    if unused:
        raise DivergenceSpecError(
            f"parameter {unused[0]!r} does not appear in the generator {text.strip()!r}; "
            "remove it or use it in the text"
        )
    return expr
