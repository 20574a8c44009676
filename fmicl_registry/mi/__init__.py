"""The mutual-information estimator benchmark: is a divergence's bound tight, biased or noisy?

The f-MICL objective is a variational lower bound on the f-mutual information (Lu et al.
2023). This package measures how well each registered divergence's bound estimates its own
``I_f`` on the standard task of Poole et al. (2019), "On variational bounds of mutual
information", and Song and Ermon (2020), "Understanding the limitations of variational mutual
information estimators": correlated Gaussians in 20 dimensions, the true KL mutual information
stepped through 2, 4, 6, 8 and 10 nats, batches of 64, separable and concatenation critics, with
InfoNCE (capped at ``log 64``) as the reference.

- :mod:`~fmicl_registry.mi.gaussians`: sampling, ``rho`` for a target MI, the exact log ratio;
- :mod:`~fmicl_registry.mi.truth`: the true ``I_f`` of any divergence (closed form from Gaussian
  moments of the ratio where ``f`` is a sum of ``c u^a (log u)^m`` terms, else Monte Carlo with a
  standard error), and the bound at the optimal critic;
- :mod:`~fmicl_registry.mi.critics`: the separable and concatenation MLP critics;
- :mod:`~fmicl_registry.mi.bench`: the training loop, bias, variance and fraction of the truth;
- :mod:`~fmicl_registry.mi.report`: JSON, CSV, Markdown and the estimates plot.

``fmicl bench mi`` is the built-in plugin ``bench_mi`` (``plugins/bench_mi.py``), which adds it
to the command line through the ``register_commands`` hook; the core of the library (the
registry, the command line, training) never imports this package.

Example:
    >>> import fmicl_registry as fm
    >>> from fmicl_registry.mi import ground_truth, rho_for_mi
    >>> rho = rho_for_mi(4.0, dim=20)
    >>> round(ground_truth(fm.get_divergence("sh"), rho, 20).value, 4)
    1.3603

    A whole (tiny) run::

        from fmicl_registry.mi import BenchConfig, run_benchmark, write_report
        result = run_benchmark(["kl", "js", "my_div.toml"], BenchConfig.quick())
        write_report(result, "mi-bench")      # results.md/.csv/.json, mi_estimates.png
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names as _lazy_names

if TYPE_CHECKING:
    from .bench import (
        INFONCE,
        QUICK_DIVERGENCES,
        BenchConfig,
        BenchError,
        BenchResult,
        LevelResult,
        Objective,
        divergence_estimate,
        infonce_estimate,
        resolve_objectives,
        run_benchmark,
    )
    from .critics import CRITICS, ConcatCritic, SeparableCritic, build_critic
    from .gaussians import (
        log_density_ratio,
        mi_for_rho,
        pairwise_log_density_ratio,
        rho_for_mi,
        sample_joint,
        sample_product,
    )
    from .report import write_report
    from .truth import (
        Truth,
        bound_at_optimal_critic,
        closed_form_truth,
        ground_truth,
        kl_mi,
        monte_carlo_truth,
        pearson_mi,
        power_log_terms,
        ratio_moment,
        squared_hellinger_mi,
    )

# Loaded on first use, so that importing the package does not pull in torch and sympy.
_LAZY = {
    **dict.fromkeys(
        [
            "INFONCE",
            "QUICK_DIVERGENCES",
            "BenchConfig",
            "BenchError",
            "BenchResult",
            "LevelResult",
            "Objective",
            "divergence_estimate",
            "infonce_estimate",
            "resolve_objectives",
            "run_benchmark",
        ],
        "bench",
    ),
    **dict.fromkeys(["CRITICS", "ConcatCritic", "SeparableCritic", "build_critic"], "critics"),
    **dict.fromkeys(
        [
            "log_density_ratio",
            "mi_for_rho",
            "pairwise_log_density_ratio",
            "rho_for_mi",
            "sample_joint",
            "sample_product",
        ],
        "gaussians",
    ),
    "write_report": "report",
    **dict.fromkeys(
        [
            "Truth",
            "bound_at_optimal_critic",
            "closed_form_truth",
            "ground_truth",
            "kl_mi",
            "monte_carlo_truth",
            "pearson_mi",
            "power_log_terms",
            "ratio_moment",
            "squared_hellinger_mi",
        ],
        "truth",
    ),
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY)

__all__ = [
    "CRITICS",
    "INFONCE",
    "QUICK_DIVERGENCES",
    "BenchConfig",
    "BenchError",
    "BenchResult",
    "ConcatCritic",
    "LevelResult",
    "Objective",
    "SeparableCritic",
    "Truth",
    "bound_at_optimal_critic",
    "build_critic",
    "closed_form_truth",
    "divergence_estimate",
    "ground_truth",
    "infonce_estimate",
    "kl_mi",
    "log_density_ratio",
    "mi_for_rho",
    "monte_carlo_truth",
    "pairwise_log_density_ratio",
    "pearson_mi",
    "power_log_terms",
    "ratio_moment",
    "resolve_objectives",
    "rho_for_mi",
    "run_benchmark",
    "sample_joint",
    "sample_product",
    "squared_hellinger_mi",
    "write_report",
]
