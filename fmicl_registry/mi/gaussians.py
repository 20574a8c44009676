"""The correlated-Gaussian task of the mutual-information benchmark (Poole et al. 2019).

``x ~ N(0, I_d)`` and ``y = rho x + sqrt(1 - rho^2) eps`` with ``eps ~ N(0, I_d)``: each
coordinate pair is a standard bivariate normal with correlation ``rho``, independent of the
others. This is the task of Poole et al. (2019), "On variational bounds of mutual information",
and Song and Ermon (2020), "Understanding the limitations of variational mutual information
estimators": ``d = 20``, batch 64, true mutual information stepped through 2, 4, 6, 8, 10 nats.

Everything here is exact: the KL mutual information ``-(d/2) log(1 - rho^2)``, its inverse and
the log density ratio

    log r(x, y) = log p(y | x) - log p(y)
                = -(d/2) log(1 - rho^2) - rho^2 (|x|^2 + |y|^2) / (2 (1 - rho^2))
                  + rho <x, y> / (1 - rho^2)

(from ``y | x ~ N(rho x, (1 - rho^2) I)`` and ``y ~ N(0, I)``, summed over coordinates).

Example:
    >>> import torch
    >>> from fmicl_registry.mi.gaussians import rho_for_mi, sample_joint, log_density_ratio
    >>> rho = rho_for_mi(2.0, dim=20)
    >>> x, y = sample_joint(4096, 20, rho, generator=torch.Generator().manual_seed(0))
    >>> round(float(log_density_ratio(x, y, rho).mean()), 1)  # E_joint log r = I(X; Y)
    2.0
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def mi_for_rho(rho: float, dim: int) -> float:
    """The KL mutual information ``-(d/2) log(1 - rho^2)`` in nats."""
    _check_rho(rho)
    return -0.5 * dim * math.log1p(-rho * rho)


def rho_for_mi(mi: float, dim: int) -> float:
    """The correlation at which ``d`` coordinate pairs share ``mi`` nats (KL mutual information).

    Example:
        >>> round(rho_for_mi(10.0, 20), 4)
        0.7951
    """
    if not (math.isfinite(mi) and mi >= 0):
        raise ValueError(f"the mutual information must be finite and >= 0, got {mi!r}")
    if dim < 1:
        raise ValueError(f"the dimension must be >= 1, got {dim!r}")
    return math.sqrt(-math.expm1(-2.0 * mi / dim))


def _check_rho(rho: float) -> None:
    if not (0.0 <= rho < 1.0):
        raise ValueError(f"rho must be in [0, 1), got {rho!r}")


def sample_joint(
    batch: int,
    dim: int,
    rho: float,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """``batch`` pairs from the joint: ``x ~ N(0, I)``, ``y = rho x + sqrt(1 - rho^2) eps``."""
    _check_rho(rho)
    x = torch.randn(batch, dim, generator=generator, dtype=dtype, device=device)
    eps = torch.randn(batch, dim, generator=generator, dtype=dtype, device=device)
    return x, rho * x + math.sqrt(1.0 - rho * rho) * eps


def sample_product(
    batch: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """``batch`` pairs from the product of the marginals: ``x`` and ``y`` independent N(0, I)."""
    x = torch.randn(batch, dim, generator=generator, dtype=dtype, device=device)
    y = torch.randn(batch, dim, generator=generator, dtype=dtype, device=device)
    return x, y


def log_density_ratio(x: Tensor, y: Tensor, rho: float) -> Tensor:
    """The exact ``log p(x, y) / (p(x) p(y))``, summed over the last dimension.

    ``x`` and ``y`` broadcast against each other, so ``log_density_ratio(x[:, None], y[None],
    rho)`` is the matrix over all pairs ``(x_i, y_j)`` (see :func:`pairwise_log_density_ratio`).
    """
    _check_rho(rho)
    s = 1.0 - rho * rho
    dim = max(x.shape[-1], y.shape[-1])
    quad = (x * x).sum(-1) + (y * y).sum(-1)
    return -0.5 * dim * math.log(s) - (rho * rho / (2.0 * s)) * quad + (rho / s) * (x * y).sum(-1)


def pairwise_log_density_ratio(x: Tensor, y: Tensor, rho: float) -> Tensor:
    """``out[i, j] = log r(x_i, y_j)`` for ``x`` of shape (B, d) and ``y`` of shape (B', d).

    The diagonal of a batch drawn from the joint holds joint pairs; the off-diagonal entries are
    pairs from the product of the marginals (the negatives of a contrastive batch).
    """
    _check_rho(rho)
    s = 1.0 - rho * rho
    dim = x.shape[-1]
    sq = (x * x).sum(-1)[:, None] + (y * y).sum(-1)[None, :]
    return -0.5 * dim * math.log(s) - (rho * rho / (2.0 * s)) * sq + (rho / s) * (x @ y.T)
