"""Geometry of learned features on the unit sphere: alignment, uniformity, pair distances.

Alignment and uniformity are the two properties Wang and Isola ("Understanding Contrastive
Representation Learning through Alignment and Uniformity on the Hypersphere", ICML 2020, section
4.1) identify in contrastive representations, and f-MICL's analysis follows them
(Lu et al. 2023): the positive term of the objective aligns the two views of a sample, the
negative term spreads different samples apart. :func:`distance_distribution` gives the distances
behind both, whose histograms are the f-MICL paper's Figure 4.

Every function L2-normalises its inputs' rows first, so it measures directions only.

Example:
    >>> import torch
    >>> from fmicl_registry.evaluation import alignment, distance_distribution, uniformity
    >>> z = torch.eye(3)
    >>> alignment(z, z)
    0.0
    >>> round(uniformity(z), 4)      # 3 points, squared distance 2 apart: log exp(-2 * 2)
    -4.0
    >>> sorted(distance_distribution(z, z))
    ['negative', 'positive']
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .features import EvaluationError, _check_features, _float_dtype

__all__ = ["alignment", "distance_distribution", "uniformity"]


def _check_positive_number(value: float, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value > 0 and math.isfinite(value))
    ):
        raise EvaluationError(f"{name} must be a positive number, got {value!r}")


def _check_positive_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EvaluationError(f"{name} must be a positive integer, got {value!r}")


def _check_views(z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor]:
    z1 = _check_features(z1, "z1")
    z2 = _check_features(z2, "z2")
    if z1.shape != z2.shape:
        raise EvaluationError(
            f"z1 and z2 must have the same shape (row i of each is one positive pair), got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    return z1, z2


def alignment(z1: Tensor, z2: Tensor, alpha: float = 2.0) -> float:
    """Alignment of positive pairs: ``mean_i ||f(x_i) - f(y_i)||_2 ** alpha`` (lower is better).

    Wang and Isola 2020, the alignment loss of eq. (4) with its default ``alpha = 2``, on the
    L2-normalised rows of ``z1`` and ``z2`` (row ``i`` of each is one positive pair). With
    ``alpha = 2`` it lies in [0, 4]; identical views give 0. Computed in float64.

    Args:
        z1, z2: ``(N, D)`` features of the two views.
        alpha: the power of the distance, positive.

    Raises:
        EvaluationError: empty, non-2-D, non-finite or differently shaped inputs, or ``alpha``
            not positive.

    Example:
        >>> import torch
        >>> alignment(torch.tensor([[1.0, 0.0]]), torch.tensor([[-2.0, 0.0]]))   # antipodal
        4.0
    """
    z1, z2 = _check_views(z1, z2)
    _check_positive_number(alpha, "alpha")
    x = torch.nn.functional.normalize(z1.to(torch.float64), dim=1)
    y = torch.nn.functional.normalize(z2.to(torch.float64), dim=1)
    return float((x - y).norm(dim=1).pow(alpha).mean())


def uniformity(z: Tensor, t: float = 2.0, *, chunk_size: int = 1024) -> float:
    """Uniformity: ``log mean_{i<j} exp(-t ||f(x_i) - f(x_j)||_2^2)`` (lower is more uniform).

    Wang and Isola 2020, the uniformity loss of eq. (5) with its default ``t = 2``, over all
    ``N (N - 1) / 2`` pairs of distinct rows of ``z`` after L2 normalisation. On the unit sphere the
    squared distance lies in [0, 4], so the value lies in [-4 t, 0]; the minimum over ``N <= D + 1``
    points is reached by a regular simplex (Lu et al. 2023, uniformity).

    The sum is a log-sum-exp (no underflow whatever ``t``), computed ``chunk_size`` rows at a
    time against the rows after them: memory ``O(chunk_size * N)``, time ``O(N^2 D)``; for very
    large ``N`` pass a random subset of rows. It runs on ``z``'s device, in float64 if ``z`` is
    float64 and in float32 otherwise (the sum itself is accumulated in float64).

    Args:
        z: ``(N, D)`` features, ``N >= 2``.
        t: the kernel's scale, positive.
        chunk_size: rows per block.

    Raises:
        EvaluationError: fewer than 2 rows, non-2-D or non-finite input, invalid ``t`` or
            ``chunk_size``.

    Example:
        >>> import torch
        >>> uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))   # antipodal: log exp(-2 * 4)
        -8.0
    """
    z = _check_features(z, "z")
    _check_positive_number(t, "t")
    _check_positive_int(chunk_size, "chunk_size")
    n = z.shape[0]
    if n < 2:
        raise EvaluationError("uniformity needs at least 2 rows of z (it averages over pairs)")
    unit = torch.nn.functional.normalize(z.to(_float_dtype(z)), dim=1)
    partial = []
    for start in range(0, n, chunk_size):
        rows = unit[start : start + chunk_size]
        cols = unit[start:]
        squared = (2.0 - 2.0 * (rows @ cols.T)).clamp(0.0, 4.0)
        row_index = torch.arange(rows.shape[0], device=z.device)[:, None]
        col_index = torch.arange(cols.shape[0], device=z.device)[None, :]
        exponent = (-t * squared).double().masked_fill(col_index <= row_index, -math.inf)
        partial.append(torch.logsumexp(exponent.reshape(-1), dim=0))  # -inf if all masked
    total = torch.logsumexp(torch.stack(partial), dim=0)
    return float(total) - math.log(n * (n - 1) / 2)


def _pair_distances(unit: Tensor, first: Tensor, second: Tensor) -> np.ndarray:
    out = []
    for start in range(0, first.shape[0], 8192):
        i = first[start : start + 8192]
        j = second[start : start + 8192]
        out.append((unit[i] - unit[j]).norm(dim=1).cpu())
    return torch.cat(out).numpy()


def distance_distribution(
    z1: Tensor, z2: Tensor, *, max_negatives: int = 100_000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Euclidean distances of positive and negative pairs of L2-normalised features.

    The quantities whose histograms are the f-MICL paper's Figure 4 (the distances that the
    positive and negative terms of the objective act on, Lu et al. 2023). Distances, not
    squared distances: on the unit sphere they lie in [0, 2] (squared: [0, 4]).

    - ``"positive"``: ``||x_i - y_i||`` for every row ``i`` (``N`` values, in row order), with
      ``x`` and ``y`` the normalised rows of ``z1`` and ``z2``.
    - ``"negative"``: ``||x_i - x_j||`` for ordered pairs ``i != j`` of ``z1``'s rows (the
      negatives of the paper's formula: different samples, one view). All ``N (N - 1)`` of them,
      row-major (``i`` then ``j``), when that is at most ``max_negatives``; otherwise
      ``max_negatives`` pairs drawn uniformly at random (with replacement) with a generator
      seeded by ``seed``.

    Computed in float64; returned as float64 NumPy arrays on the CPU.

    Args:
        z1, z2: ``(N, D)`` features of the two views, ``N >= 2``.
        max_negatives: the most negative distances returned.
        seed: seeds the subsampling of negative pairs.

    Raises:
        EvaluationError: differently shaped, empty, non-2-D or non-finite inputs, fewer than 2
            rows, or invalid ``max_negatives``.

    Example:
        >>> import torch
        >>> d = distance_distribution(torch.eye(2), torch.eye(2))
        >>> d["positive"].tolist(), [round(v, 4) for v in d["negative"].tolist()]
        ([0.0, 0.0], [1.4142, 1.4142])
    """
    z1, z2 = _check_views(z1, z2)
    _check_positive_int(max_negatives, "max_negatives")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EvaluationError(f"seed must be an integer, got {seed!r}")
    n = z1.shape[0]
    if n < 2:
        raise EvaluationError("distance_distribution needs at least 2 rows (negatives are pairs)")
    x = torch.nn.functional.normalize(z1.to(torch.float64), dim=1)
    y = torch.nn.functional.normalize(z2.to(torch.float64), dim=1)
    positive = (x - y).norm(dim=1).cpu().numpy()

    pairs = n * (n - 1)
    if pairs <= max_negatives:
        flat = torch.arange(pairs)
        first = flat // (n - 1)
        other = flat % (n - 1)
    else:
        generator = torch.Generator().manual_seed(seed)
        first = torch.randint(n, (max_negatives,), generator=generator)
        other = torch.randint(n - 1, (max_negatives,), generator=generator)
    # other enumerates the n - 1 indices j != i: skip i itself.
    second = other + (other >= first).long()
    device = x.device
    negative = _pair_distances(x, first.to(device), second.to(device))
    return {"positive": positive, "negative": negative}
