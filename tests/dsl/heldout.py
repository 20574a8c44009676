"""A held-out table of f-divergence generators from the literature, none of them the catalog's.

Issue 11 asks that a user's own generator, not only the nine built in, gets sound checks and
stable float32 terms. This table is the user: generators from tensorflow-probability's Csiszar
functions, the Amari-alpha, Cressie-Read, Hellinger-order and chi^k families, skew Jensen-Shannon,
Jensen-Tsallis, Le Cam, Puri-Vincze, Lin's K divergence, Taneja's arithmetic-geometric mean
divergence and a few smooth convex ones, the same functions in disguised algebraic forms
(expanded, factored, logs combined, powers inside logs), and entries that must be refused, each
with the reason (a regular expression) the user should read in the ``DivergenceSpecError``.

Every valid entry carries an independent reference, typed in by hand here in mpmath (no sympy,
nothing from ``fmicl_registry``): the generator ``f(u)`` and its closed-form ``f'`` and ``f''``.
``tests/dsl/test_heldout.py`` checks the closed forms against ``mpmath.diff`` of ``f``, ``f``
against the entry's text (evaluated by a tiny mpmath walker below), convexity on a log grid,
and then the library against the references. ``benchmarks/heldout.py`` prints the same
measurements as a table. The composed terms, in ``x = log_r`` and ``u = e^x``::

    positive_term(x) = f'(u)                 d/dx = u f''(u)
    negative_term(x) = u f'(u) - f(u)        d/dx = u^2 f''(u)

With ``normalize=True`` the reference generator is ``f(u) - f(1)`` (only the negative term
changes). References are evaluated at ``DPS`` digits, more where ``u f'(u) - f(u)`` cancels.
This module imports neither pytest nor the library, so the benchmark can share it.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

Mp = Any  # an mpmath number (mpmath has no type hints)
MpFn = Callable[[Mp], Mp]
Number = int | float | Fraction

#: Working precision of the references, in decimal digits (raised where a term cancels).
DPS = 120
#: Float32 criterion of issue 11: relative error of values and autograd gradients.
TARGET = 1e-5
#: ``|got - want| / max(|want|, FLOOR)``: below this magnitude the error is absolute.
FLOOR = 1e-30
FLOAT32_MAX = float(np.finfo(np.float32).max)
LOW, HIGH = -80.0, 80.0


@dataclass(frozen=True)
class Reference:
    """A generator in mpmath: ``f``, and ``f'``, ``f''`` in closed form (written by hand)."""

    f: MpFn
    fp: MpFn
    fpp: MpFn


@dataclass(frozen=True)
class Entry:
    """One generator of the table: valid (``ref`` set, ``refusal`` None) or to be refused."""

    name: str
    text: str
    source: str
    params: Mapping[str, Number] = field(default_factory=dict)
    normalize: bool = False
    ref: Reference | None = None
    #: A regular expression the ``DivergenceSpecError`` message must match; None: valid.
    refusal: str | None = None
    #: For an entry refused as not convex: a ``u`` with ``f''(u) < 0`` (``ref`` then set).
    witness: float | None = None
    #: For a valid entry that a library may still refuse by a rule it states (issue 11: "refusing
    #: abs may be a fine rule, but then say that rule, not a false statement"): a pattern the
    #: message must match, and ``false_claim``, one it must not (the statement that is false).
    rule: str | None = None
    false_claim: str | None = None

    @property
    def valid(self) -> bool:
        return self.refusal is None

    def define_kwargs(self) -> dict[str, Any]:
        """Keywords for ``fm.define_divergence(entry.text, **entry.define_kwargs())``."""
        return {
            "name": f"heldout_{self.name}",
            "params": dict(self.params) or None,
            "normalize": self.normalize,
        }


def _q(value: Number) -> Mp:
    """A parameter as an mpmath number at the current precision (exactly: floats as decimals)."""
    exact = Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
    return mpmath.mpf(exact.numerator) / exact.denominator


# --- mpmath shorthands (module-level mpmath functions follow the working precision) ---------

log, exp, sqrt = mpmath.log, mpmath.exp, mpmath.sqrt


def _e() -> Mp:
    return mpmath.e + 0  # evaluated at the current precision


# --- families and single generators (f, f', f'') ---------------------------------------------


def kl() -> Reference:
    return Reference(lambda u: u * log(u), lambda u: log(u) + 1, lambda u: 1 / u)


def reverse_kl() -> Reference:
    return Reference(lambda u: -log(u), lambda u: -1 / u, lambda u: 1 / u**2)


def pearson() -> Reference:
    return Reference(lambda u: (u - 1) ** 2, lambda u: 2 * (u - 1), lambda u: mpmath.mpf(2))


def neyman() -> Reference:
    return Reference(lambda u: (u - 1) ** 2 / u, lambda u: 1 - 1 / u**2, lambda u: 2 / u**3)


def squared_hellinger() -> Reference:
    return Reference(
        lambda u: (sqrt(u) - 1) ** 2, lambda u: 1 - 1 / sqrt(u), lambda u: u ** mpmath.mpf(-1.5) / 2
    )


def triangular() -> Reference:
    return Reference(
        lambda u: (u - 1) ** 2 / (u + 1), lambda u: 1 - 4 / (u + 1) ** 2, lambda u: 8 / (u + 1) ** 3
    )


def jeffrey(scale: Number = 1) -> Reference:
    return Reference(
        lambda u: _q(scale) * (u - 1) * log(u),
        lambda u: _q(scale) * (log(u) + 1 - 1 / u),
        lambda u: _q(scale) * (1 / u + 1 / u**2),
    )


def js() -> Reference:
    # u log u - (u + 1) log((u + 1)/2)
    return Reference(
        lambda u: u * log(u) - (u + 1) * log((u + 1) / 2),
        lambda u: log(2 * u / (u + 1)),
        lambda u: 1 / (u * (u + 1)),
    )


def gan() -> Reference:
    # u log u - (u + 1) log(u + 1), f(1) = -2 log 2 (normalised in the table)
    return Reference(
        lambda u: u * log(u) - (u + 1) * log(u + 1),
        lambda u: log(u / (u + 1)),
        lambda u: 1 / (u * (u + 1)),
    )


def amari_self_normalized(a: Number) -> Reference:
    # ((u^a - 1) - a (u - 1)) / (a (a - 1)), a not in {0, 1}
    return Reference(
        lambda u: ((u ** _q(a) - 1) - _q(a) * (u - 1)) / (_q(a) * (_q(a) - 1)),
        lambda u: (u ** (_q(a) - 1) - 1) / (_q(a) - 1),
        lambda u: u ** (_q(a) - 2),
    )


def amari(a: Number) -> Reference:
    # (u^a - 1) / (a (a - 1)), a not in {0, 1}
    return Reference(
        lambda u: (u ** _q(a) - 1) / (_q(a) * (_q(a) - 1)),
        lambda u: u ** (_q(a) - 1) / (_q(a) - 1),
        lambda u: u ** (_q(a) - 2),
    )


def amari_alpha(al: Number) -> Reference:
    # Amari's own parametrisation: 4/(1 - al^2) (1 - u^((1 + al)/2)), al != +-1
    return Reference(
        lambda u: 4 / (1 - _q(al) ** 2) * (1 - u ** ((1 + _q(al)) / 2)),
        lambda u: -2 / (1 - _q(al)) * u ** ((_q(al) - 1) / 2),
        lambda u: u ** ((_q(al) - 3) / 2),
    )


def t_power_self_normalized(s: Number, t: Number) -> Reference:
    return Reference(
        lambda u: _q(s) * (u ** _q(t) - 1 - _q(t) * (u - 1)),
        lambda u: _q(s) * _q(t) * (u ** (_q(t) - 1) - 1),
        lambda u: _q(s) * _q(t) * (_q(t) - 1) * u ** (_q(t) - 2),
    )


def t_power(s: Number, t: Number) -> Reference:
    return Reference(
        lambda u: _q(s) * (u ** _q(t) - 1),
        lambda u: _q(s) * _q(t) * u ** (_q(t) - 1),
        lambda u: _q(s) * _q(t) * (_q(t) - 1) * u ** (_q(t) - 2),
    )


def cressie_read(lam: Number) -> Reference:
    # (u^(l+1) - u - l (u - 1)) / (l (l + 1)), l not in {0, -1}
    def f(u: Mp) -> Mp:
        lq = _q(lam)
        return (u ** (lq + 1) - u - lq * (u - 1)) / (lq * (lq + 1))

    return Reference(f, lambda u: (u ** _q(lam) - 1) / _q(lam), lambda u: u ** (_q(lam) - 1))


def hellinger_order(a: Number) -> Reference:
    # (u^a - 1) / (a - 1), a > 0, a != 1
    return Reference(
        lambda u: (u ** _q(a) - 1) / (_q(a) - 1),
        lambda u: _q(a) * u ** (_q(a) - 1) / (_q(a) - 1),
        lambda u: _q(a) * u ** (_q(a) - 2),
    )


def skew_js(p: Number) -> Reference:
    # p u log u - m log m, m = p u + 1 - p
    def m(u: Mp) -> Mp:
        return _q(p) * u + 1 - _q(p)

    return Reference(
        lambda u: _q(p) * u * log(u) - m(u) * log(m(u)),
        lambda u: _q(p) * (log(u) - log(m(u))),
        lambda u: _q(p) * (1 - _q(p)) / (u * m(u)),
    )


def jensen_tsallis(q: Number) -> Reference:
    # ((u^q + 1)/2 - ((u + 1)/2)^q) / (q - 1): the Jensen gap of u^q/(q - 1)
    def fp(u: Mp) -> Mp:
        qq = _q(q)
        return qq / (2 * (qq - 1)) * (u ** (qq - 1) - ((u + 1) / 2) ** (qq - 1))

    def fpp(u: Mp) -> Mp:
        qq = _q(q)
        return qq / 2 * (u ** (qq - 2) - ((u + 1) / 2) ** (qq - 2) / 2)

    return Reference(
        lambda u: ((u ** _q(q) + 1) / 2 - ((u + 1) / 2) ** _q(q)) / (_q(q) - 1), fp, fpp
    )


def arithmetic_geometric(scale: Number = 1, self_normalized: bool = True) -> Reference:
    # scale * [(1 + u) log((1 + u)/sqrt(u)) - (1 + u) log 2]  (without the log 2 term if not sn)
    def f(u: Mp) -> Mp:
        body = (1 + u) * log((1 + u) / sqrt(u))
        if self_normalized:
            body -= (1 + u) * log(2)
        return _q(scale) * body

    def fp(u: Mp) -> Mp:
        body = log((1 + u) / sqrt(u)) + (u - 1) / (2 * u)
        if self_normalized:
            body -= log(2)
        return _q(scale) * body

    return Reference(f, fp, lambda u: _q(scale) * (u**2 + 1) / (2 * u**2 * (1 + u)))


def modified_gan(self_normalized: bool) -> Reference:
    # log(1 + u) - log(u) [+ (u - 1)/2]; f(1) = log 2 either way (normalised in the table)
    half = 1 if self_normalized else 0
    return Reference(
        lambda u: log(1 + u) - log(u) + half * (u - 1) / 2,
        lambda u: mpmath.mpf(half) / 2 - 1 / (u * (1 + u)),
        lambda u: (2 * u + 1) / (u**2 * (1 + u) ** 2),
    )


def symmetrized_pearson() -> Reference:
    # 0.5 (u - 1)^2 + 0.5 u (1/u - 1)^2 = (u - 1)^2 (u + 1) / (2 u)
    return Reference(
        lambda u: (u - 1) ** 2 * (u + 1) / (2 * u),
        lambda u: (u - 1) + (1 - 1 / u**2) / 2,
        lambda u: 1 + 1 / u**3,
    )


def chi_square() -> Reference:
    return Reference(lambda u: u**2 - 1, lambda u: 2 * u, lambda u: mpmath.mpf(2))


def chi_k3() -> Reference:
    return Reference(
        lambda u: abs(u - 1) ** 3, lambda u: 3 * abs(u - 1) * (u - 1), lambda u: 6 * abs(u - 1)
    )


def chi_k4() -> Reference:
    return Reference(
        lambda u: (u - 1) ** 4, lambda u: 4 * (u - 1) ** 3, lambda u: 12 * (u - 1) ** 2
    )


def le_cam() -> Reference:
    return Reference(
        lambda u: (u - 1) ** 2 / (2 * (u + 1)),
        lambda u: (1 - 4 / (u + 1) ** 2) / 2,
        lambda u: 4 / (u + 1) ** 3,
    )


def puri_vincze4() -> Reference:
    # (u - 1)^4 / (2 (u + 1)^3); f' = (u-1)^3 (u+7) / (2 (u+1)^4), f'' = 24 (u-1)^2 / (u+1)^5
    return Reference(
        lambda u: (u - 1) ** 4 / (2 * (u + 1) ** 3),
        lambda u: (u - 1) ** 3 * (u + 7) / (2 * (u + 1) ** 4),
        lambda u: 24 * (u - 1) ** 2 / (u + 1) ** 5,
    )


def log_cosh() -> Reference:
    return Reference(
        lambda u: log(mpmath.cosh(u - 1)),
        lambda u: mpmath.tanh(u - 1),
        lambda u: mpmath.sech(u - 1) ** 2,
    )


def atan_shifted() -> Reference:
    # (u - 1) atan(u - 1): f' = atan v + v/(1 + v^2), f'' = 2/(1 + v^2)^2, v = u - 1
    return Reference(
        lambda u: (u - 1) * mpmath.atan(u - 1),
        lambda u: mpmath.atan(u - 1) + (u - 1) / (1 + (u - 1) ** 2),
        lambda u: 2 / (1 + (u - 1) ** 2) ** 2,
    )


def exp_minus_e() -> Reference:
    return Reference(lambda u: exp(u) - _e() * u, lambda u: exp(u) - _e(), lambda u: exp(u))


def lin_k() -> Reference:
    # u log(2u/(1 + u)): f' = log(2u/(1 + u)) + 1/(1 + u), f'' = 1/(u (1 + u)^2)
    return Reference(
        lambda u: u * log(2 * u / (1 + u)),
        lambda u: log(2 * u / (1 + u)) + 1 / (1 + u),
        lambda u: 1 / (u * (1 + u) ** 2),
    )


def lin_k_reverse() -> Reference:
    return Reference(lambda u: log(2 / (1 + u)), lambda u: -1 / (1 + u), lambda u: 1 / (1 + u) ** 2)


def tsallis_15() -> Reference:
    # the catalog's tsallis (a = 3/2, normalised): 2 u^(3/2) - 2
    return Reference(
        lambda u: 2 * u ** mpmath.mpf(1.5) - 2,
        lambda u: 3 * sqrt(u),
        lambda u: mpmath.mpf(1.5) / sqrt(u),
    )


# --- generators that must be refused, with a reference where the refusal is about f'' --------


def log_cosh_log() -> Reference:
    # log cosh(log u): f' = tanh(log u)/u, f'' = (sech^2(log u) - tanh(log u))/u^2
    return Reference(
        lambda u: log(mpmath.cosh(log(u))),
        lambda u: mpmath.tanh(log(u)) / u,
        lambda u: (mpmath.sech(log(u)) ** 2 - mpmath.tanh(log(u))) / u**2,
    )


def three_log_mean() -> Reference:
    return Reference(
        lambda u: 3 * log((1 + u) / 2) - log(u),
        lambda u: 3 / (1 + u) - 1 / u,
        lambda u: 1 / u**2 - 3 / (1 + u) ** 2,
    )


def burg_jensen() -> Reference:
    # log((1 + u)/2) - log(u)/2: f'' = 1/(2u^2) - 1/(1 + u)^2 < 0 for u > 1 + sqrt(2)
    return Reference(
        lambda u: log((1 + u) / 2) - log(u) / 2,
        lambda u: 1 / (1 + u) - 1 / (2 * u),
        lambda u: 1 / (2 * u**2) - 1 / (1 + u) ** 2,
    )


def u_atan_tanh() -> Reference:
    # u atan(tanh u): g = atan(tanh u), g' = sech(2u), g'' = -2 sech(2u) tanh(2u);
    # f'' = 2 g' + u g'' = 2 sech(2u) (1 - u tanh(2u)) < 0 for u > 1.0396...
    return Reference(
        lambda u: u * mpmath.atan(mpmath.tanh(u)),
        lambda u: mpmath.atan(mpmath.tanh(u)) + u * mpmath.sech(2 * u),
        lambda u: 2 * mpmath.sech(2 * u) * (1 - u * mpmath.tanh(2 * u)),
    )


def log_squared() -> Reference:
    # log(u)^2: f'' = 2 (1 - log u)/u^2 < 0 for u > e
    return Reference(
        lambda u: log(u) ** 2, lambda u: 2 * log(u) / u, lambda u: 2 * (1 - log(u)) / u**2
    )


def neg_kl() -> Reference:
    return Reference(lambda u: -u * log(u), lambda u: -log(u) - 1, lambda u: -1 / u)


def sqrt_minus_one() -> Reference:
    return Reference(
        lambda u: sqrt(u) - 1, lambda u: 1 / (2 * sqrt(u)), lambda u: -(u ** mpmath.mpf(-1.5)) / 4
    )


# --- the reasons a user should read ---------------------------------------------------------

NOT_CONVEX = r"(?i)not convex|convex"
NOT_SMOOTH = r"(?i)twice differentiable|differentiable|smooth|kink|C2"
NOT_REAL = r"(?i)real|complex|imaginary"
F1 = r"f\(1\)"

TFP = "tensorflow-probability tfp.vi"
FGAN = "Nowozin, Cseke, Tomioka 2016 (f-GAN), Table 1"


def amari_a0_self_normalized() -> Reference:
    # -log u + (u - 1)
    return Reference(lambda u: -log(u) + (u - 1), lambda u: 1 - 1 / u, lambda u: 1 / u**2)


def amari_a1_self_normalized() -> Reference:
    # u log u - (u - 1)
    return Reference(lambda u: u * log(u) - (u - 1), lambda u: log(u), lambda u: 1 / u)


def _valid(
    name: str,
    text: str,
    source: str,
    ref: Reference,
    params: Mapping[str, Number] | None = None,
    normalize: bool = False,
    rule: str | None = None,
    false_claim: str | None = None,
) -> Entry:
    return Entry(
        name, text, source, dict(params or {}), normalize, ref=ref, rule=rule,
        false_claim=false_claim,
    )  # fmt: skip


def _refused(
    name: str,
    text: str,
    source: str,
    refusal: str,
    ref: Reference | None = None,
    witness: float | None = None,
    params: Mapping[str, Number] | None = None,
    normalize: bool = False,
) -> Entry:
    return Entry(name, text, source, dict(params or {}), normalize, ref, refusal, witness)


AMARI_SN = "((u**a - 1) - a*(u - 1))/(a*(a - 1))"
AMARI = "(u**a - 1)/(a*(a - 1))"
T_POWER_SN = "s*(u**t - 1 - t*(u - 1))"
T_POWER = "s*(u**t - 1)"
CRESSIE_READ = "(u**(lam + 1) - u - lam*(u - 1))/(lam*(lam + 1))"
SKEW_JS = "p*u*log(u) - (p*u + 1 - p)*log(p*u + 1 - p)"
CR = "Cressie & Read 1984 (JRSS B 46), power divergence"
SKEW = f"{FGAN} 'Jensen-Shannon-weighted' (skew JS, Nielsen 2010)"

# fmt: off
TABLE: list[Entry] = [
    # ---- tensorflow-probability's Csiszar functions (tfp.vi, csiszar_divergence.py) ----------
    _valid("tfp_amari_a0_sn", "-log(u) + (u - 1)",
           f"{TFP}.amari_alpha(alpha=0, self_normalized=True)", amari_a0_self_normalized()),
    _valid("tfp_amari_a1_sn", "u*log(u) - (u - 1)",
           f"{TFP}.amari_alpha(alpha=1, self_normalized=True)", amari_a1_self_normalized()),
    _valid("tfp_amari_a2", "(u**2 - 1)/2",
           f"{TFP}.amari_alpha(alpha=2, self_normalized=False)", amari(2)),
    _valid("tfp_amari_a2_sn", "((u**2 - 1) - 2*(u - 1))/2",
           f"{TFP}.amari_alpha(alpha=2, self_normalized=True)", amari_self_normalized(2)),
    _valid("tfp_amari_a3_sn", AMARI_SN,
           f"{TFP}.amari_alpha(alpha=3, self_normalized=True)", amari_self_normalized(3),
           params={"a": 3}),
    _valid("tfp_amari_am1_sn", AMARI_SN,
           f"{TFP}.amari_alpha(alpha=-1, self_normalized=True)", amari_self_normalized(-1),
           params={"a": -1}),
    _valid("tfp_amari_a025_sn", AMARI_SN,
           f"{TFP}.amari_alpha(alpha=0.25, self_normalized=True)", amari_self_normalized(0.25),
           params={"a": 0.25}),
    _valid("tfp_amari_am05", AMARI,
           f"{TFP}.amari_alpha(alpha=-0.5, self_normalized=False)", amari(-0.5),
           params={"a": -0.5}),
    _valid("tfp_amari_a07", AMARI,
           f"{TFP}.amari_alpha(alpha=0.7, self_normalized=False)", amari(0.7),
           params={"a": 0.7}),
    # JS, self-normalised: the catalog's js, spelled as TFP spells it (logs not combined).
    _valid("tfp_js_sn", "u*log(u) - (1 + u)*log(1 + u) + (u + 1)*log(2)",
           f"{TFP}.jensen_shannon(self_normalized=True)", js()),
    # TFP's JS without the (u + 1) log 2 term = f-GAN's "GAN" generator; f(1) = -2 log 2.
    _valid("tfp_js_gan", "u*log(u) - (1 + u)*log(1 + u)",
           f"{TFP}.jensen_shannon(self_normalized=False) = {FGAN} 'GAN'", gan(),
           normalize=True),
    _valid("tfp_arith_geom_sn", "(1 + u)*log((1 + u)/sqrt(u)) - (1 + u)*log(2)",
           f"{TFP}.arithmetic_geometric(self_normalized=True)", arithmetic_geometric()),
    _valid("tfp_arith_geom", "(1 + u)*log((1 + u)/sqrt(u))",
           f"{TFP}.arithmetic_geometric(self_normalized=False), f(1) = 2 log 2",
           arithmetic_geometric(self_normalized=False), normalize=True),
    _valid("tfp_pearson_expanded", "u**2 - 2*u + 1",
           f"{TFP}.pearson, expanded (disguised catalog pearson)", pearson()),
    _valid("tfp_sh_expanded", "u - 2*sqrt(u) + 1",
           f"{TFP}.squared_hellinger, expanded (disguised catalog sh)", squared_hellinger()),
    _valid("tfp_triangular_split", "u + 1 - 4*u/(u + 1)",
           f"{TFP}.triangular, as u + 1 - 4u/(u + 1) (disguised catalog vlc)", triangular()),
    _valid("tfp_t_power_t025_sn", T_POWER_SN,
           f"{TFP}.t_power(t=0.25, self_normalized=True), s = -1 for 0 < t < 1",
           t_power_self_normalized(-1, 0.25), params={"s": -1, "t": 0.25}),
    _valid("tfp_t_power_t3_sn", T_POWER_SN,
           f"{TFP}.t_power(t=3, self_normalized=True)", t_power_self_normalized(1, 3),
           params={"s": 1, "t": 3}),
    _valid("tfp_t_power_tm1", T_POWER,
           f"{TFP}.t_power(t=-1, self_normalized=False)", t_power(1, -1),
           params={"s": 1, "t": -1}),
    _valid("tfp_jeffreys", "0.5*(u*log(u) - log(u))", f"{TFP}.jeffreys", jeffrey(0.5)),
    _valid("tfp_chi_square", "u**2 - 1", f"{TFP}.chi_square", chi_square()),
    # TFP's modified GAN: f(1) = log 2 both ways ("self-normalised" there means f'(1) = 0).
    _valid("tfp_modified_gan_sn", "log(1 + u) - log(u) + 0.5*(u - 1)",
           f"{TFP}.modified_gan(self_normalized=True)", modified_gan(True), normalize=True),
    _valid("tfp_modified_gan", "log(1 + u) - log(u)",
           f"{TFP}.modified_gan(self_normalized=False)", modified_gan(False), normalize=True),
    _valid("tfp_symmetrized_pearson", "0.5*(u - 1)**2 + 0.5*u*(1/u - 1)**2",
           f"{TFP}.symmetrized_csiszar_function(pearson): f(u)/2 + u f(1/u)/2",
           symmetrized_pearson()),
    _valid("tfp_symmetrized_kl", "0.5*u*log(u) + 0.5*u*(1/u)*log(1/u)",
           f"{TFP}.symmetrized_csiszar_function(kl_forward) (half of Jeffreys)", jeffrey(0.5)),
    # ---- parametrised families ----------------------------------------------------------------
    _valid("cressie_read_m05", CRESSIE_READ, f"{CR}, lambda = -1/2", cressie_read(-0.5),
           params={"lam": -0.5}),
    _valid("cressie_read_2_3", CRESSIE_READ, f"{CR}, lambda = 2/3 (their recommendation)",
           cressie_read(Fraction(2, 3)), params={"lam": Fraction(2, 3)}),
    _valid("cressie_read_2", CRESSIE_READ, f"{CR}, lambda = 2", cressie_read(2),
           params={"lam": 2}),
    _valid("cressie_read_3", CRESSIE_READ, f"{CR}, lambda = 3", cressie_read(3),
           params={"lam": 3}),
    _valid("skew_js_01", SKEW_JS, f"{SKEW}, p = 0.1", skew_js(0.1), params={"p": 0.1}),
    _valid("skew_js_03", SKEW_JS, f"{SKEW}, p = 0.3", skew_js(0.3), params={"p": 0.3}),
    _valid("skew_js_07", SKEW_JS, f"{SKEW}, p = 0.7", skew_js(0.7), params={"p": 0.7}),
    _valid("jensen_tsallis_15", "((u**q + 1)/2 - ((u + 1)/2)**q)/(q - 1)",
           "Jensen-Tsallis q-difference (Martins et al. 2009, JMLR 10): the Jensen gap of "
           "u**q/(q - 1), q = 3/2", jensen_tsallis(1.5), params={"q": 1.5}),
    _valid("amari_alpha_05", "4/(1 - al**2)*(1 - u**((1 + al)/2))",
           "Amari & Nagaoka 2000, alpha-divergence, alpha = 1/2", amari_alpha(0.5),
           params={"al": 0.5}),
    _valid("amari_alpha_m02", "4/(1 - al**2)*(1 - u**((1 + al)/2))",
           "Amari & Nagaoka 2000, alpha-divergence, alpha = -1/5", amari_alpha(-0.2),
           params={"al": -0.2}),
    _valid("hellinger_order_25", "(u**a - 1)/(a - 1)",
           "Sason & Verdu 2016 (IEEE TIT 62), Hellinger divergence of order 5/2",
           hellinger_order(2.5), params={"a": 2.5}),
    # ---- awkward points of the families a tuner searches continuously (issue 15) ------------
    # Parameters to 3 significant digits: exponents like 237/100 or 137/200, whose large
    # denominators made sympy's rewrites and solve slow (Hellinger of order a is the tsallis
    # spec u**a/(a - 1) normalised). The names are AWKWARD (below).
    *[_valid(f"hellinger_order_{tag}", "(u**a - 1)/(a - 1)",
             f"Sason & Verdu 2016, Hellinger divergence of order {a} (= tsallis, a = {a})",
             hellinger_order(a), params={"a": a})
      for tag, a in (("237", 2.37), ("117", 1.17), ("391", 3.91), ("105", 1.05))],
    *[_valid(f"amari_alpha_{tag}", "4/(1 - al**2)*(1 - u**((1 + al)/2))",
             f"Amari & Nagaoka 2000, alpha-divergence, alpha = {al}", amari_alpha(al),
             params={"al": al})
      for tag, al in (("037", 0.37), ("m063", -0.63), ("173", 1.73))],
    *[_valid(f"cressie_read_{tag}", CRESSIE_READ, f"{CR}, lambda = {lam}", cressie_read(lam),
             params={"lam": lam})
      for tag, lam in (("037", 0.37), ("173", 1.73), ("m029", -0.29))],
    _valid("skew_js_037", SKEW_JS, f"{SKEW}, p = 0.37", skew_js(0.37), params={"p": 0.37}),
    # ---- single generators --------------------------------------------------------------------
    # |u - 1|^3 is C2 (f'' = 6|u - 1|) and convex: a valid generator. Issue 11 allows a rule
    # against abs, stated as such; "not twice differentiable" would be false.
    _valid("chi_k3", "abs(u - 1)**3", "Vajda 1973 chi^k divergence, k = 3", chi_k3(),
           rule=r"(?i)\babs\b.*(not|may not|refused|cannot)|(not|may not|cannot).*\babs\b",
           false_claim=r"(?i)(is )?not twice differentiable|not C2|f'' (does not exist|jumps)"),
    _valid("chi_k4", "(u - 1)**4", "Vajda 1973 chi^k divergence, k = 4", chi_k4()),
    _valid("le_cam", "(u - 1)**2/(2*(u + 1))", "Le Cam 1986, Le Cam distance (half triangular)",
           le_cam()),
    _valid("puri_vincze_4", "(u - 1)**4/(2*(u + 1)**3)",
           "Puri & Vincze 1990 / Kafka, Osterreicher, Vincze 1991, Phi_k with k = 4",
           puri_vincze4()),
    _valid("log_cosh", "log(cosh(u - 1))", "log-cosh generator (issue 11's held-out list)",
           log_cosh()),
    _valid("atan_shifted", "(u - 1)*atan(u - 1)", "issue 11's held-out list", atan_shifted()),
    _valid("exp_minus_e", "exp(u) - E*u", "issue 11's held-out list", exp_minus_e()),
    _valid("lin_k", "u*log(2*u/(1 + u))", "Lin 1991 (IEEE TIT 37), K divergence K(P, Q)",
           lin_k()),
    _valid("lin_k_reverse", "log(2/(1 + u))", "Lin 1991, K divergence K(Q, P)",
           lin_k_reverse()),
    _valid("taneja_ag", "(u + 1)/2*log((u + 1)/(2*sqrt(u)))",
           "Taneja 1995, arithmetic-geometric mean divergence", arithmetic_geometric(0.5)),
    # ---- disguised forms (same functions as above or as the catalog, other algebra) ----------
    _valid("kl_log_square", "u*log(u**2)/2", "KL, log of a square", kl()),
    _valid("kl_log_power", "log(u**u)", "KL, u inside a power inside log", kl()),
    _valid("kl_log1p", "u*log1p(u - 1)", "KL, log as log1p", kl()),
    _valid("reverse_kl_reciprocal", "log(1/u)", "reverse KL, log of a reciprocal", reverse_kl()),
    _valid("neyman_expanded", "u + 1/u - 2", "Neyman chi^2, expanded", neyman()),
    _valid("jeffrey_log_power", "log(u**(u - 1))", "Jeffrey, log of a power", jeffrey()),
    _valid("amari_a3_factored", "(u - 1)**2*(u + 2)/6",
           "tfp_amari_a3_sn factored", amari_self_normalized(3)),
    _valid("chi_square_factored", "(u - 1)*(u + 1)", "tfp_chi_square factored", chi_square()),
    _valid("exp_minus_e_shifted", "E*(exp(u - 1) - u)", "exp_minus_e, factored", exp_minus_e()),
    _valid("log_cosh_exp", "log((exp(u - 1) + exp(1 - u))/2)", "log_cosh, cosh as exponentials",
           log_cosh()),
    _valid("le_cam_expanded", "(u**2 - 2*u + 1)/(2*u + 2)", "le_cam, expanded", le_cam()),
    _valid("skew_js_03_combined", "p*u*log(u/(p*u + 1 - p)) - (1 - p)*log(p*u + 1 - p)",
           "skew_js_03, logs combined", skew_js(0.3), params={"p": 0.3}),
    _valid("js_combined", "u*log(2*u/(u + 1)) + log(2/(u + 1))",
           "JS as K(P, Q) + K(Q, P) (Lin 1991), logs combined", js()),
    _valid("tsallis_sqrt", "2*u*sqrt(u) - 2", "the catalog's tsallis (a = 3/2), written out",
           tsallis_15()),
    # ---- must be refused ----------------------------------------------------------------------
    _refused("log_cosh_log", "log(cosh(log(u)))",
             "issue 11: f''(3.02) = -0.049, f'' < 0 for all u > 2.06", NOT_CONVEX,
             log_cosh_log(), witness=3.02),
    _refused("three_log_mean", "3*log((1 + u)/2) - log(u)", "issue 11: f''(3) = -0.076",
             NOT_CONVEX, three_log_mean(), witness=3.0),
    _refused("burg_jensen", "log((1 + u)/2) - log(u)/2",
             "Burbea & Rao 1982 Jensen difference of -log, read as a generator: f'' < 0 for "
             "u > 1 + sqrt(2)", NOT_CONVEX, burg_jensen(), witness=10.0),
    # C2, but f'' = 2 sech(2u) (1 - u tanh 2u) < 0 for u > 1.0397: not convex, so refused.
    _refused("u_atan_tanh", "u*atan(tanh(u))", "issue 11 (raised NotImplementedError)",
             NOT_CONVEX, u_atan_tanh(), witness=1.5, normalize=True),
    _refused("log_squared", "log(u)**2", "squared log ratio: f'' < 0 for u > e", NOT_CONVEX,
             log_squared(), witness=5.0),
    _refused("concave_neg_kl", "-u*log(u)", "minus KL: concave", NOT_CONVEX, neg_kl(),
             witness=1.0),
    _refused("concave_sqrt", "sqrt(u) - 1", "concave", NOT_CONVEX, sqrt_minus_one(),
             witness=1.0),
    _refused("f1_not_zero", "u*log(u) + 1", "KL + 1: f(1) = 1 without normalize=True", F1),
    _refused("expm1_huge", "expm1(u + 1e12)",
             "issue 11 (raised MemoryError): f(1) = e^(1e12 + 1) - 1",
             r"(?i)f\(1\)|overflow|too large|not finite|finite"),
    _refused("sqrt_minus_u", "sqrt(-u)", "issue 11 (raised NotImplementedError): complex",
             NOT_REAL),
    _refused("minus_u_power", "(-u)**0.5", "issue 11 (raised NotImplementedError): complex",
             NOT_REAL),
    _refused("sqrt_u_minus_2", "sqrt(u - 2)", "complex for u < 2", NOT_REAL),
    _refused("affine", "3*u - 3", "affine: the divergence is zero", r"(?i)affine"),
    _refused("constant", "log(4) - 2*log(2)", "does not depend on u", r"(?i)depend"),
    _refused("unknown_function", "u*ln(u)", "ln is not a function of the language",
             r"unknown function 'ln'"),
    _refused("unknown_name", "u**b - 1", "b is not declared", r"(?i)unknown name 'b'"),
    _refused("caret_power", "u^2 - 1", "^ is xor in Python, not a power",
             r"'\^' is not a power"),
    _refused("tfp_total_variation", "0.5*abs(u - 1)", f"{TFP}.total_variation: kink at u = 1",
             NOT_SMOOTH),
    _refused("abs_u_minus_1", "abs(u - 1)", "kink at u = 1", NOT_SMOOTH),
    _refused("tfp_log1p_abs", "u**((u - 1)/abs(u - 1)) - 1",
             f"{TFP}.log1p_abs, u**sign(u - 1) - 1: kink at u = 1, 0/0 at u = 1",
             NOT_SMOOTH + rf"|{F1}|not defined|undefined"),
    _refused("chi_k15", "abs(u - 1)**1.5",
             "Vajda chi^k, k = 3/2: C1, f'' = 3/4 |u - 1|^(-1/2) is infinite at u = 1",
             NOT_SMOOTH),
    # f'' = 8/(3 - u)^3: a pole at u = 3 and f'' < 0 beyond it.
    _refused("pole_at_3", "(u - 1)**2/(3 - u)", "pole at u = 3 (not defined on u > 0)",
             r"(?i)pole|singular|not defined|undefined|not finite|infinite|not convex"),
]
# fmt: on

VALID: list[Entry] = [entry for entry in TABLE if entry.valid]
REFUSED: list[Entry] = [entry for entry in TABLE if not entry.valid]
BY_NAME: dict[str, Entry] = {entry.name: entry for entry in TABLE}
#: The awkward family points (parameters to 3 significant digits), derived cold by
#: ``test_heldout.test_awkward_family_points_derive_cold`` and ``benchmarks/family_points.py``.
AWKWARD: list[Entry] = [
    BY_NAME[name]
    for name in (
        "hellinger_order_237", "hellinger_order_117", "hellinger_order_391",
        "hellinger_order_105", "amari_alpha_037", "amari_alpha_m063", "amari_alpha_173",
        "cressie_read_037", "cressie_read_173", "cressie_read_m029", "skew_js_037",
    )
]  # fmt: skip


def refused_by_rule(entry: Entry, message: str) -> bool:
    """Whether a valid ``entry``'s refusal ``message`` states an allowed rule (see ``rule``)."""
    if entry.rule is None or not re.search(entry.rule, message):
        return False
    return entry.false_claim is None or not re.search(entry.false_claim, message)


# --- the references ---------------------------------------------------------------------------


def _shift(entry: Entry) -> Mp:
    assert entry.ref is not None
    return entry.ref.f(mpmath.mpf(1)) if entry.normalize else mpmath.mpf(0)


def _digits_lost(a: Mp, b: Mp, difference: Mp) -> float:
    scale = max(abs(a), abs(b))
    if scale == 0:
        return 0.0
    if difference == 0:
        return math.inf
    return float(mpmath.log10(scale / abs(difference)))


def exact_terms(entry: Entry, x: float, dps: int = DPS) -> tuple[float, float, float, float]:
    """``(positive, d positive/dx, negative, d negative/dx)`` at ``log_r = x``, as floats.

    ``u f'(u) - f(u)`` is recomputed with more digits wherever its two parts cancel beyond
    ``dps - 40`` digits (Puri-Vincze at ``u = e^80``: 1e-33 out of 1e35).
    """
    ref = entry.ref
    assert ref is not None, f"{entry.name} has no reference"
    with mpmath.workdps(dps):
        u = exp(mpmath.mpf(x))
        fp = ref.fp(u)
        fpp = ref.fpp(u)
        positive, d_positive, d_negative = fp, u * fpp, u * u * fpp
        work = dps
        while True:
            with mpmath.workdps(work):
                uw = exp(mpmath.mpf(x))
                a = uw * ref.fp(uw)
                b = ref.f(uw) - _shift(entry)
                negative = a - b
                lost = _digits_lost(a, b, negative)
            if lost <= work - 40 or work >= 8 * dps:
                break
            work = 2 * work if math.isinf(lost) else int(lost) + dps
        return float(positive), float(d_positive), float(negative), float(d_negative)


def text_value(entry: Entry, u: Mp) -> Mp:
    """The entry's text evaluated in mpmath at ``u`` (a tiny walker; nothing is ``eval``-ed).

    It ties the hand-written reference to the text the library reads: no sympy, no library.
    """
    functions: dict[str, MpFn] = {
        "log": mpmath.log, "exp": mpmath.exp, "sqrt": mpmath.sqrt, "abs": mpmath.fabs,
        "log1p": mpmath.log1p, "expm1": mpmath.expm1, "sinh": mpmath.sinh,
        "cosh": mpmath.cosh, "tanh": mpmath.tanh, "atan": mpmath.atan, "asinh": mpmath.asinh,
    }  # fmt: skip
    names: dict[str, Mp] = {"u": u, "pi": mpmath.pi + 0, "E": mpmath.e + 0}
    names.update({key: _q(value) for key, value in entry.params.items()})
    binary: dict[type, Callable[[Mp, Mp], Mp]] = {
        ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a**b,
    }  # fmt: skip

    def walk(node: ast.AST) -> Mp:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return _q(node.value)
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in binary:
            return binary[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return functions[node.func.id](*[walk(arg) for arg in node.args])
        raise ValueError(f"{entry.name}: cannot evaluate {ast.dump(node)}")

    return walk(ast.parse(entry.text, mode="eval"))


# --- the points ---------------------------------------------------------------------------


def base_points() -> np.ndarray:
    """Float32 ``log_r`` in ``[-80, 80]``: a grid, around 0, around integers, the tails."""
    grid = np.linspace(LOW, HIGH, 641)
    small = np.logspace(-7, -1, 25)
    near_integers = [k + s * 1e-3 for k in range(-5, 6) for s in (-1, 1)]
    far = (80, 79.9, 79, 75, 70, 60, 50, 45, 44.6, 44.36, 44.1, 43.7, 40, 30, 20, 10)
    tails = [sign * t for sign in (-1, 1) for t in far]
    wide = np.random.default_rng(0).uniform(LOW, HIGH, 160)
    points = np.concatenate([grid, small, -small, [0.0], near_integers, tails, wide])
    return np.unique(points.astype(np.float32))


def boundary_points(pieces: Mapping[str, Sequence[Sequence[Any]]]) -> np.ndarray:
    """Float32 points at and beside the finite piece boundaries ``d.pieces`` reports."""
    found: list[float] = []
    for rows in pieces.values():
        for row in rows:
            for edge in row[:2]:
                edge = float(edge)
                if math.isfinite(edge) and LOW <= edge <= HIGH:
                    e32 = np.float32(edge)
                    step = 1e-3 * max(1.0, abs(edge))
                    found += [float(e32), edge - step, edge + step]
                    found += [float(np.nextafter(e32, np.float32(np.inf)))]
                    found += [float(np.nextafter(e32, np.float32(-np.inf)))]
    points = np.clip(np.asarray(found, dtype=np.float64), LOW, HIGH).astype(np.float32)
    return np.unique(points)


def points_for(pieces: Mapping[str, Sequence[Sequence[Any]]] | None) -> np.ndarray:
    extra = boundary_points(pieces) if pieces else np.zeros(0, np.float32)
    return np.unique(np.concatenate([base_points(), extra]))


_CACHE: dict[tuple[str, float], tuple[float, float, float, float]] = {}


def references(entry: Entry, points: np.ndarray) -> np.ndarray:
    """``exact_terms`` at every point, shape ``(n, 4)``, memoised per entry and point."""
    rows = []
    for x in points.tolist():
        key = (entry.name, x)
        if key not in _CACHE:
            _CACHE[key] = exact_terms(entry, x)
        rows.append(_CACHE[key])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


# --- the criterion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worst:
    """The worst relative error of one term's value or gradient over the points."""

    error: float
    log_r: float
    got: float
    want: float
    failing: int  # how many points miss the target
    checked: int  # how many points have a representable exact value

    @property
    def ok(self) -> bool:
        return self.failing == 0

    def describe(self) -> str:
        return (
            f"worst relative error {self.error:.3g} at log_r = {self.log_r!r}: got "
            f"{self.got!r}, want {self.want!r} ({self.failing} of {self.checked} points over "
            f"{TARGET:g})"
        )


def relative_errors(got: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Errors ``|got - want| / max(|want|, FLOOR)`` where ``want`` is finite and fits float32
    (``inf`` where ``got`` is not finite), and the mask of the points that count."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    counted = np.isfinite(want) & (np.abs(want) <= FLOAT32_MAX)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(got - want) / np.maximum(np.abs(want), FLOOR)
    error = np.where(np.isfinite(got), error, np.inf)
    return np.where(counted, error, 0.0), counted


def worst(points: np.ndarray, got: np.ndarray, want: np.ndarray) -> Worst:
    error, counted = relative_errors(got, want)
    i = int(np.argmax(error))
    return Worst(
        error=float(error[i]),
        log_r=float(points[i]),
        got=float(got[i]),
        want=float(want[i]),
        failing=int(np.sum(error > TARGET)),
        checked=int(np.sum(counted)),
    )


# --- measuring the library (it is passed in: this module does not import it) -----------------


def measure_term(
    term: Callable[[Any], Any], entry: Entry, points: np.ndarray, which: str
) -> tuple[Worst, Worst]:
    """The worst value and autograd-gradient errors of ``term`` (``positive_term`` or
    ``negative_term`` of the library's divergence for ``entry``) on float32 ``points``."""
    import torch

    column = {"positive_term": 0, "negative_term": 2}[which]
    exact = references(entry, points)
    x = torch.tensor(points, dtype=torch.float32, requires_grad=True)
    y = term(x)
    if y.dtype != torch.float32 or y.shape != x.shape:
        raise TypeError(f"{which} returned {y.dtype} {tuple(y.shape)} for float32 {tuple(x.shape)}")
    (grad,) = torch.autograd.grad(y.sum(), x)
    value = worst(points, y.detach().double().numpy(), exact[:, column])
    slope = worst(points, grad.double().numpy(), exact[:, column + 1])
    return value, slope


#: The paper's settings: gamma 1 with alpha 40 (vision), gamma 20 with alpha 409600 (text).
OBJECTIVE_SETTINGS = [(1.0, 40.0), (20.0, 409600.0)]


def objective_views(dtype: Any) -> tuple[Any, Any]:
    """Two views of a batch of 16 random 8-dimensional embeddings (seeded), as leaves."""
    import torch

    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(16, 8, generator=g, dtype=torch.float64)
    z2 = z1 + 0.3 * torch.randn(16, 8, generator=g, dtype=torch.float64)
    return z1.to(dtype).requires_grad_(), z2.to(dtype).requires_grad_()


def objective_problem(objective: Callable[[Any, Any], Any]) -> str | None:
    """None if the loss and its gradients are finite in float32; else what is not. Where the
    float64 loss or gradients are finite but beyond float32, infinity is the right answer:
    ``"exceeds float32"`` (not a problem)."""
    import torch

    results = {}
    for dtype in (torch.float32, torch.float64):
        z1, z2 = objective_views(dtype)
        loss = objective(z1, z2)
        results[dtype] = [loss.detach(), *torch.autograd.grad(loss, (z1, z2))]
    biggest = max(float(t.abs().max()) for t in results[torch.float64])
    if math.isfinite(biggest) and biggest > FLOAT32_MAX:
        return "exceeds float32"
    bad = []
    for what, tensor in zip(["loss", "grad z1", "grad z2"], results[torch.float32], strict=True):
        nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
        if nan or inf:
            bad.append(f"{what}: {nan} NaN, {inf} inf")
    return "; ".join(bad) or None
