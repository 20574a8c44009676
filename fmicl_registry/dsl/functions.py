"""Sympy functions the stable printer uses, beyond the ones sympy has.

``log1p`` and ``expm1`` come from ``sympy.codegen.cfunctions``; ``softplus`` and ``sigmoid`` are
defined here.
All three evaluate numerically (mpmath) and differentiate symbolically, so an expression that
uses them can still be checked against a high-precision reference.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p


class softplus(sp.Function):
    """``softplus(z) = log(1 + exp(z))``, computed without overflow."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z = self.args[0]
        return 1 / (1 + sp.exp(-z))

    def _eval_rewrite_as_log(self, z: sp.Expr, **kwargs: object) -> sp.Expr:
        return sp.log(1 + sp.exp(z))

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        return sp.log(1 + sp.exp(self.args[0]))._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_is_positive(self) -> bool | None:
        return True if self.args[0].is_real else None


class sigmoid(sp.Function):
    """``sigmoid(z) = 1 / (1 + exp(-z)) = exp(-softplus(-z))``: one kernel where the slopes of
    the composed terms would otherwise take several (JS: ``u / (u + 1) = sigmoid(log_r)``)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * sigmoid(-self.args[0])

    def _eval_rewrite_as_exp(self, z: sp.Expr, **kwargs: object) -> sp.Expr:
        return 1 / (1 + sp.exp(-z))

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        return (1 / (1 + sp.exp(-self.args[0])))._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_is_positive(self) -> bool | None:
        return True if self.args[0].is_real else None


__all__ = ["expm1", "log1p", "sigmoid", "softplus"]
