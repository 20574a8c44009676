"""Loop-based references for the objective tests: python loops over pairs, float64 / mpmath.

Nothing here uses the library: f' and f* are typed in from the table of divergences of Lu et al.
2023, the losses follow the papers' formulas term by term (f-MICL: Lu et al. 2023; NT-Xent: SimCLR
eq. 1; MoCo eq. 1; Wang and Isola eq. 4-5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mpmath
import torch
from textbook import TEXTBOOK

Vector = list[float]

#: The cosine critic [-1, 1] lies inside the domain of f* only for these (Lu et al. 2023, table).
COSINE_OK = {"kl", "pearson", "jeffrey"}


def unit_rows(z: torch.Tensor) -> list[Vector]:
    rows = []
    for row in z.detach().double().tolist():
        norm = math.sqrt(sum(v * v for v in row))
        rows.append([v / norm for v in row])
    return rows


def dot(x: Vector, y: Vector) -> float:
    return sum(a * b for a, b in zip(x, y, strict=True))


def squared_distance(x: Vector, y: Vector) -> float:
    return sum((a - b) ** 2 for a, b in zip(x, y, strict=True))


def fmicl_reference_terms(
    z1: torch.Tensor,
    z2: torch.Tensor,
    name: str,
    *,
    similarity: str = "gaussian",
    gamma: float = 1.0,
    mu: float = 1.0,
    scale: float = 1.0,
    negatives: str = "view1",
    queue: torch.Tensor | None = None,
) -> tuple[mpmath.mpf, mpmath.mpf]:
    """``(mean_i pos(x_i, y_i), mean over negative pairs of neg(., .))``, by loops (50 digits)."""
    fp, fstar = TEXTBOOK[name]
    with mpmath.workdps(50):
        if similarity == "gaussian":

            def pos(x: Vector, y: Vector) -> mpmath.mpf:
                return fp(mu * mpmath.exp(-gamma * mpmath.mpf(squared_distance(x, y))))

            def neg(x: Vector, y: Vector) -> mpmath.mpf:
                return fstar(pos(x, y))  # f*(f'(G(x, y))), f-Gaussian similarity (Lu et al. 2023)
        else:

            def pos(x: Vector, y: Vector) -> mpmath.mpf:
                return scale * mpmath.mpf(dot(x, y))

            def neg(x: Vector, y: Vector) -> mpmath.mpf:
                return fstar(pos(x, y))

        xs, ys = unit_rows(z1), unit_rows(z2)
        n = len(xs)
        pairs: list[tuple[Vector, Vector]] = []
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                if negatives in ("view1", "both", "simclr"):
                    pairs.append((xs[i], xs[j]))
                if negatives in ("both", "simclr"):
                    pairs.append((ys[i], ys[j]))
                if negatives in ("cross", "simclr"):
                    pairs.append((xs[i], ys[j]))
                if negatives == "simclr":
                    pairs.append((ys[i], xs[j]))
        if queue is not None:
            pairs += [(x, q) for x in xs for q in unit_rows(queue)]
        positive = mpmath.fsum(pos(x, y) for x, y in zip(xs, ys, strict=True)) / n
        negative = mpmath.fsum(neg(a, b) for a, b in pairs) / len(pairs)
        return positive, negative


def fmicl_reference(
    z1: torch.Tensor, z2: torch.Tensor, name: str, *, alpha: float, **options: Any
) -> float:
    """-( mean_i pos(x_i, y_i) - alpha * mean over negative pairs of neg(., .) ), by loops."""
    positive, negative = fmicl_reference_terms(z1, z2, name, **options)
    with mpmath.workdps(50):
        return float(-(positive - alpha * negative))


def ntxent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's NT-Xent (Chen et al. 2020, eq. 1 and Algorithm 1), interleaved as there:
    views 2k and 2k+1 are the two augmentations of sample k."""
    xs, ys = unit_rows(z1), unit_rows(z2)
    views: list[Vector] = [v for pair in zip(xs, ys, strict=True) for v in pair]
    m = len(views)

    def sim(i: int, j: int) -> float:
        return dot(views[i], views[j]) / temperature

    def ell(i: int, j: int) -> float:
        denominator = sum(math.exp(sim(i, k)) for k in range(m) if k != i)
        return -math.log(math.exp(sim(i, j)) / denominator)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(m // 2)) / m


def moco_reference(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor | None, temperature: float
) -> float:
    """MoCo's InfoNCE (He et al. 2020, eq. 1): positive k_i, negatives the queue (or, with no
    queue, the other keys of the batch)."""
    qs, ks = unit_rows(q), unit_rows(k)
    total = 0.0
    for i, x in enumerate(qs):
        negatives: Sequence[Vector] = (
            unit_rows(queue) if queue is not None else [v for j, v in enumerate(ks) if j != i]
        )
        positive = math.exp(dot(x, ks[i]) / temperature)
        rest = sum(math.exp(dot(x, v) / temperature) for v in negatives)
        total += -math.log(positive / (positive + rest))
    return total / len(qs)


def align_uniform_reference(
    z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0, t: float = 2.0, lam: float = 1.0
) -> float:
    """Wang and Isola 2020: align_loss + lam * (uniform_loss(x) + uniform_loss(y)) / 2, with
    uniform_loss = log mean over pairs i < j of exp(-t ||x_i - x_j||^2) (their pdist code)."""
    xs, ys = unit_rows(z1), unit_rows(z2)
    align = sum(squared_distance(x, y) ** (alpha / 2) for x, y in zip(xs, ys, strict=True))

    def uniform(vs: list[Vector]) -> float:
        terms = [
            math.exp(-t * squared_distance(vs[i], vs[j]))
            for i in range(len(vs))
            for j in range(i + 1, len(vs))
        ]
        return math.log(sum(terms) / len(terms))

    return align / len(xs) + lam * (uniform(xs) + uniform(ys)) / 2
