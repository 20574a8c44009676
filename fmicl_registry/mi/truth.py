"""Ground truth ``I_f(X; Y) = E_{p(x)p(y)} f(r(x, y))`` on the correlated-Gaussian task.

Two routes, chosen per divergence by :func:`ground_truth`:

**Closed form (Gaussian moments of the ratio).** For one coordinate pair with correlation
``rho``, the product-of-marginals moment of the density ratio is a Gaussian integral (it is the
Renyi/Chernoff coefficient of the bivariate normal):

    E_q[r^a] = (1 - rho^2)^((1 - a)/2) / sqrt(1 - (1 - a)^2 rho^2)
               (finite iff (1 - a)^2 rho^2 < 1)

and ``d`` independent pairs multiply: ``E_q[r^a] = M(a)^d``. Differentiating in ``a`` gives
``E_q[r^a (log r)^m] = d^m/da^m M(a)^d``. So every generator that expands into terms
``c u^a (log u)^m`` has an exact I_f: KL ``u log u`` gives ``-(d/2) log(1 - rho^2)``, Pearson
``(u - 1)^2`` gives ``(1 - rho^2)^(-d) - 1``, squared Hellinger ``(sqrt u - 1)^2`` gives
``2 - 2 (2 (1 - rho^2)^(1/4) / sqrt(4 - rho^2))^d`` (closed forms), and so are Tsallis,
reverse KL, Neyman chi^2 and Jeffrey. The decomposition is read off the divergence's sympy
generator, so a user's TOML divergence of that shape gets an exact truth too. When a term's
moment diverges the truth is ``+inf`` (for a convex ``f`` the most extreme power dominates with a
positive coefficient); Neyman chi^2 is infinite as soon as ``rho >= 1/2``.

**Monte Carlo, with a standard error.** Otherwise (JS, Vincze-Le Cam, ...) ``I_f`` is estimated
with the exact log density ratio, evaluating ``f`` in float64. Three unbiased estimators:

- ``"product"``: ``mean f(r)`` over product-of-marginals samples (the definition);
- ``"joint"``: ``mean f(r) / r`` over joint samples (importance sampling);
- ``"mixture"`` (the default): half the samples from each, ``mean 2 f(r) / (1 + r)``, i.e.
  importance sampling from ``m = (p + q) / 2`` (defensive importance sampling, Hesterberg 1995).
  Its second moment is at most twice that of either of the other two, and for the bounded
  divergences (JS: ``2 f(r)/(1+r) <= 2 log 2``; VLC, squared Hellinger: ``<= 2``) the weight is
  bounded, so the estimate and its standard error are trustworthy at any MI.

For large MI ``E_q f(r)`` can be dominated by rare samples (Pearson's truth is ``e^{2 I} - 1``, half
a billion at 10 nats); a sample standard error then underestimates the real error. A Monte-Carlo
truth is marked unreliable when its relative standard error exceeds 5% or one sample carries more
than 1% of the sum.

References: Poole et al. (2019), "On variational bounds of mutual information" (the benchmark);
Song and Ermon (2020), "Understanding the limitations of variational mutual information
estimators" (bias and variance of the estimators).

Example:
    >>> import fmicl_registry as fm
    >>> from fmicl_registry.mi.truth import ground_truth
    >>> from fmicl_registry.mi.gaussians import rho_for_mi
    >>> rho = rho_for_mi(2.0, dim=20)
    >>> truth = ground_truth(fm.get_divergence("kl"), rho, 20)
    >>> round(truth.value, 6), truth.method
    (2.0, 'closed form')
    >>> round(ground_truth(fm.get_divergence("pearson"), rho, 20).value, 3)  # e^4 - 1
    53.598
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from .gaussians import _check_rho, log_density_ratio, sample_joint, sample_product

if TYPE_CHECKING:
    import sympy as sp

    from ..divergence import Divergence

Tensor = torch.Tensor
MonteCarloMethod = Literal["mixture", "product", "joint"]
#: A Monte-Carlo truth with a larger relative standard error is marked unreliable.
MAX_RELATIVE_SE = 0.05
#: ... and so is one where a single sample carries a larger share of the sum of |terms|.
MAX_SAMPLE_SHARE = 0.01
#: Below this log ratio, ``exp`` underflows in float64; the ratio is taken as ``e^-700``.
_LOG_R_FLOOR = -700.0


@dataclass(frozen=True)
class Truth:
    """The true f-mutual information at one correlation, and how it was obtained.

    ``value`` may be ``inf``; ``se`` is the Monte-Carlo standard error (0 for a closed form);
    ``reliable`` is False when a Monte-Carlo value cannot be trusted (see the module docstring)
    or is not finite; ``note`` says why, in words.
    """

    value: float
    se: float
    method: str
    reliable: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain data (floats may be ``inf``/``nan``)."""
        return asdict(self)


# ------------------------------------------------------------------ closed forms


def kl_mi(rho: float, dim: int) -> float:
    """KL mutual information ``-(d/2) log(1 - rho^2)`` (closed form)."""
    _check_rho(rho)
    return -0.5 * dim * math.log1p(-rho * rho)


def pearson_mi(rho: float, dim: int) -> float:
    """Pearson chi^2 mutual information ``(1 - rho^2)^(-d) - 1`` (closed form)."""
    _check_rho(rho)
    return math.expm1(-dim * math.log1p(-rho * rho))


def squared_hellinger_mi(rho: float, dim: int) -> float:
    """Squared Hellinger ``2 - 2 (2 (1 - rho^2)^(1/4) / sqrt(4 - rho^2))^d`` (closed form)."""
    _check_rho(rho)
    log_bc = math.log(2.0) + 0.25 * math.log1p(-rho * rho) - 0.5 * math.log(4.0 - rho * rho)
    return -2.0 * math.expm1(dim * log_bc)


@functools.lru_cache(maxsize=8)
def _moment_function(m: int) -> Callable[[Any, Any, Any], Any]:
    """``(a, s, d) -> d^m/da^m M(a)^d`` with ``s = 1 - rho^2``, as an mpmath function."""
    import sympy as sp

    a, s, n = sp.symbols("a s n", real=True)
    log_m = (1 - a) / 2 * sp.log(s) - sp.log(1 - (1 - a) ** 2 * (1 - s)) / 2
    expr = sp.diff(sp.exp(n * log_m), a, m)
    return sp.lambdify((a, s, n), expr, "mpmath")


def ratio_moment(a: float, rho: float, dim: int, log_power: int = 0) -> float:
    """``E_{p(x)p(y)}[r^a (log r)^m]`` in closed form (``inf`` where it diverges).

    ``m = log_power``. ``a = 1, m = 1`` is the KL mutual information; ``a = 2`` is Pearson's
    ``1 + I``; ``a = 1/2`` is the Bhattacharyya coefficient ``1 - H^2 / 2``.

    Example:
        >>> from fmicl_registry.mi.truth import ratio_moment, kl_mi
        >>> abs(ratio_moment(1.0, 0.6, 3, log_power=1) - kl_mi(0.6, 3)) < 1e-12
        True
    """
    import mpmath

    _check_rho(rho)
    if log_power < 0:
        raise ValueError(f"log_power must be >= 0, got {log_power!r}")
    if (1.0 - a) ** 2 * rho * rho >= 1.0:
        return math.inf
    with mpmath.workdps(40):
        s = 1 - mpmath.mpf(rho) ** 2
        return float(_moment_function(log_power)(mpmath.mpf(a), s, dim))


PowerLogTerm = tuple[float, float, int]  # (coefficient c, power a, log power m): c u^a log(u)^m


def power_log_terms(divergence: Divergence) -> list[PowerLogTerm] | None:
    """The generator as a sum of ``c u^a (log u)^m`` terms, or None when it is not one.

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.mi.truth import power_log_terms
        >>> sorted(power_log_terms(fm.get_divergence("sh")))
        [(-2.0, 0.5, 0), (1.0, 0.0, 0), (1.0, 1.0, 0)]
        >>> power_log_terms(fm.get_divergence("js")) is None
        True
    """
    return _power_log_terms(divergence.generator)


def _power_log_terms(generator: sp.Expr) -> list[PowerLogTerm] | None:
    import sympy as sp

    symbols = [s for s in generator.free_symbols if s.name == "u"]
    if len(symbols) != 1 or len(generator.free_symbols) != 1:
        return None
    u = symbols[0]
    log_u = sp.log(u)
    expanded = sp.expand(sp.expand_log(generator, force=False))
    collected: dict[tuple[float, int], float] = {}
    for term in sp.Add.make_args(expanded):
        coefficient, rest = term.as_independent(u, as_Add=False)
        if not (coefficient.is_number and coefficient.is_real):
            return None
        power: sp.Expr = sp.Integer(0)
        logs = 0
        for factor in sp.Mul.make_args(rest):
            base, exponent = factor.as_base_exp()
            if factor == 1:
                continue
            if base == u and exponent.is_number and exponent.is_real:
                power += exponent
            elif base == log_u and exponent.is_Integer and int(exponent) > 0:
                logs += int(exponent)
            else:
                return None
        key = (float(power), logs)
        collected[key] = collected.get(key, 0.0) + float(coefficient)
    return [(c, a, m) for (a, m), c in collected.items() if c != 0.0]


def closed_form_truth(divergence: Divergence, rho: float, dim: int) -> float | None:
    """The exact ``I_f`` from Gaussian moments of the ratio, or None when ``f`` has no
    ``c u^a (log u)^m`` expansion (``inf`` when a moment diverges)."""
    terms = power_log_terms(divergence)
    if terms is None:
        return None
    return _sum_moments(terms, rho, dim)


def _sum_moments(terms: list[PowerLogTerm], rho: float, dim: int) -> float:
    import mpmath

    total = mpmath.mpf(0)
    with mpmath.workdps(40):
        for c, a, m in terms:
            if (1.0 - a) ** 2 * rho * rho >= 1.0:
                # For a convex f the diverging extreme powers carry positive coefficients.
                return math.inf
            s = 1 - mpmath.mpf(rho) ** 2
            total += mpmath.mpf(c) * _moment_function(m)(mpmath.mpf(a), s, dim)
        return float(total)


# ------------------------------------------------------------------ Monte Carlo


def _f_of_log_ratio(divergence: Divergence, log_r: Tensor) -> Tensor:
    r = torch.exp(log_r.clamp(min=_LOG_R_FLOOR))
    return divergence.f(r)


def _mc_terms(
    divergence: Divergence,
    rho: float,
    dim: int,
    samples: int,
    method: MonteCarloMethod,
    generator: torch.Generator,
    chunk: int,
) -> tuple[list[Tensor], list[Tensor]]:
    """Per-sample terms, as (joint-side chunks, product-side chunks)."""
    joint: list[Tensor] = []
    product: list[Tensor] = []
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        done += n
        if method in ("joint", "mixture"):
            x, y = sample_joint(n, dim, rho, generator=generator, dtype=torch.float64)
            log_r = log_density_ratio(x, y, rho)
            f = _f_of_log_ratio(divergence, log_r)
            if method == "joint":
                joint.append(f * torch.exp(-log_r))
            else:
                joint.append(2.0 * f * torch.sigmoid(-log_r))  # 2 f(r) / (1 + r)
        if method in ("product", "mixture"):
            x, y = sample_product(n, dim, generator=generator, dtype=torch.float64)
            log_r = log_density_ratio(x, y, rho)
            f = _f_of_log_ratio(divergence, log_r)
            product.append(f if method == "product" else 2.0 * f * torch.sigmoid(-log_r))
    return joint, product


def monte_carlo_truth(
    divergence: Divergence,
    rho: float,
    dim: int,
    *,
    samples: int = 2**18,
    seed: int = 0,
    method: MonteCarloMethod = "mixture",
    chunk: int = 2**15,
) -> Truth:
    """A Monte-Carlo ``I_f`` with its standard error, from the exact density ratio (float64).

    ``samples`` is the number of draws from each distribution the method samples (the
    mixture draws ``samples`` joint and ``samples`` product pairs, and stratifies: half weight
    each). See the module docstring for the methods and when a value is marked unreliable.

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.mi.truth import monte_carlo_truth
        >>> t = monte_carlo_truth(fm.get_divergence("kl"), 0.5, 2, samples=2**16)
        >>> abs(t.value - 0.2877) < 4 * t.se, t.reliable
        (True, True)
    """
    _check_rho(rho)
    if method not in ("mixture", "product", "joint"):
        raise ValueError(f"method must be 'mixture', 'product' or 'joint', got {method!r}")
    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples!r}")
    generator = torch.Generator().manual_seed(seed)
    joint, product = _mc_terms(divergence, rho, dim, samples, method, generator, chunk)
    parts = [torch.cat(side) for side in (joint, product) if side]
    weight = 1.0 / len(parts)
    value = sum(weight * float(p.mean()) for p in parts)
    se = math.sqrt(sum(weight**2 * float(p.var()) / p.numel() for p in parts))
    magnitudes = torch.cat([weight * p.abs() / p.numel() for p in parts])
    total = float(magnitudes.sum())
    share = float(magnitudes.max()) / total if total > 0 else 0.0
    label = f"Monte Carlo ({method}, n={samples})"
    if not (math.isfinite(value) and math.isfinite(se)):
        return Truth(value, se, label, False, "the Monte-Carlo terms are not finite")
    problems = []
    if se > max(MAX_RELATIVE_SE * abs(value), 1e-3):
        problems.append(f"relative standard error {se / max(abs(value), 1e-300):.1%}")
    if share > MAX_SAMPLE_SHARE:
        problems.append(f"one sample carries {share:.1%} of the sum (heavy tail)")
    if problems:
        note = "unreliable: " + "; ".join(problems)
        return Truth(value, se, label, False, note)
    return Truth(value, se, label, True, "")


def ground_truth(
    divergence: Divergence,
    rho: float,
    dim: int,
    *,
    samples: int = 2**18,
    seed: int = 0,
) -> Truth:
    """``I_f`` at correlation ``rho`` in ``dim`` dimensions: the closed form when ``f`` expands
    into ``c u^a (log u)^m`` terms, the mixture Monte-Carlo estimate otherwise."""
    value = closed_form_truth(divergence, rho, dim)
    if value is not None:
        if math.isinf(value):
            return Truth(value, 0.0, "closed form", False, "infinite: a moment E_q[r^a] diverges")
        return Truth(value, 0.0, "closed form", True, "")
    return monte_carlo_truth(divergence, rho, dim, samples=samples, seed=seed)


def bound_at_optimal_critic(
    divergence: Divergence,
    rho: float,
    dim: int,
    *,
    samples: int = 2**18,
    seed: int = 0,
) -> tuple[float, float]:
    """``Divergence.lower_bound`` with the exact log density ratio as the critic, and its
    standard error (float64; independent joint and product samples).

    The bound is tight at the optimal critic ``log r`` (Lu et al. 2023), so this estimates
    the true ``I_f``: ``E_p f'(r) - E_q [r f'(r) - f(r)] = E_q f(r)``.

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.mi.truth import bound_at_optimal_critic, kl_mi
        >>> value, se = bound_at_optimal_critic(fm.get_divergence("kl"), 0.5, 2)
        >>> abs(value - kl_mi(0.5, 2)) < 4 * se
        True
    """
    generator = torch.Generator().manual_seed(seed)
    x, y = sample_joint(samples, dim, rho, generator=generator, dtype=torch.float64)
    log_r_pos = log_density_ratio(x, y, rho)
    x, y = sample_product(samples, dim, generator=generator, dtype=torch.float64)
    log_r_neg = log_density_ratio(x, y, rho)
    value = float(divergence.lower_bound(log_r_pos, log_r_neg))
    pos = divergence.positive_term(log_r_pos)
    neg = divergence.negative_term(log_r_neg)
    se = math.sqrt(float(pos.var()) / samples + float(neg.var()) / samples)
    return value, se
