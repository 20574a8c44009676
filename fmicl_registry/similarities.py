"""Similarities between projections (Lu et al. 2023), registered by the built-in plugin.

- ``gaussian``: the f-Gaussian log density ratio ``log r = log mu - gamma ||x - y||^2`` of
  unit vectors (kind ``"log_ratio"``, used through ``positive_term``/``negative_term``);
- ``cosine``: the critic ``s = scale <x, y>`` of unit vectors (kind ``"critic"``, used as ``s``
  and ``f*(s)``).

Both L2-normalise their inputs first unless built with ``normalize=False`` (objectives, which
normalise the projections themselves, build them so). Each follows the ``Similarity`` protocol
of ``fmicl_registry.hookspecs``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

import torch
import torch.nn.functional as F

from .dsl.ops import functorch_active
from .errors import SimilarityError
from .hookspecs import Similarity

Tensor = torch.Tensor


def _unit(a: Tensor, b: Tensor, normalize: bool) -> tuple[Tensor, Tensor]:
    return (F.normalize(a, dim=-1), F.normalize(b, dim=-1)) if normalize else (a, b)


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SimilarityError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise SimilarityError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class Gaussian:
    """The f-Gaussian similarity: ``log r(x, y) = log mu - gamma ||x - y||^2`` (Lu et al.
    2023) on L2-normalised ``x``, ``y``; ``gamma = 1 / (2 sigma^2)``.

    The squared distance of unit vectors lies in ``[0, 4]``, so ``log r`` lies in
    ``[log mu - 4 gamma, log mu]`` (``value_range()``; the f-MICL objective specialises the
    divergence's terms to it). ``pairwise`` uses ``2 - 2 <x, y>`` (one matrix product) and
    clamps rounding errors back into the range in place (its gradient is that of the formula:
    no mask over the ``N x K`` pairs); ``paired`` uses ``||x - y||^2`` directly (exact for
    close pairs) and an ordinary clamp (its gradient is zero where rounding crossed the bound:
    at exactly antipodal views, where the positive term's slope can reach ``e^(2 gamma)``).
    With ``normalize=False`` the inputs must already be unit vectors.

    Example:
        >>> import torch
        >>> sim = Gaussian(gamma=2.0)
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> sim.pairwise(x, x)
        tensor([[ 0., -4.],
                [-4.,  0.]])
        >>> sim.value_range()
        (-8.0, 0.0)
    """

    kind: Literal["log_ratio"] = "log_ratio"
    #: ``pairwise(a, b) == pairwise(b, a).T``: the objective differentiates a batch against
    #: itself through one side only (``objectives._pairs.pair_sum``).
    symmetric = True

    def __init__(self, gamma: float = 1.0, mu: float = 1.0, normalize: bool = True) -> None:
        self.normalize = bool(normalize)
        self.gamma = _positive("gamma", gamma)
        self.mu = _positive("mu", mu)
        self.log_mu = math.log(self.mu)

    def value_range(self) -> tuple[float, float]:
        return (self.log_mu - 4.0 * self.gamma, self.log_mu)

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = _unit(a, b, self.normalize)
        # log mu - gamma (2 - 2 <a, b>) in one fused product, then clamped into the range.
        low, high = self.value_range()
        log_r = torch.addmm(a.new_full((), high - 2 * self.gamma), a, b.mT, alpha=2 * self.gamma)
        # The clamp only undoes rounding (the exact value lies in the range), so it runs in
        # place outside autograd: the gradient is that of the formula, and no N x K mask is
        # built for a clamp backward (four passes: two comparisons, an and, a where).
        if functorch_active():  # vmap has no batching rule for clamp_: the same, out of place
            return log_r + (log_r.clamp(low, high) - log_r).detach()
        with torch.no_grad():
            log_r.clamp_(low, high)
        return log_r

    def paired(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = _unit(a, b, self.normalize)
        squared = (a - b).square().sum(-1).clamp(max=4.0)
        return self.log_mu - self.gamma * squared

    def __repr__(self) -> str:
        return f"Gaussian(gamma={self.gamma:g}, mu={self.mu:g})"


class Cosine:
    """The cosine critic: ``s(x, y) = scale <x, y>`` on L2-normalised ``x``, ``y`` (Lu et al.
    2023), values in ``[-scale, scale]``.

    Used as the critic value directly, so the negative term is ``f*(s)``: the f-MICL objective
    refuses a divergence whose conjugate domain does not contain ``[-scale, scale]``. With
    ``normalize=False`` the inputs must already be unit vectors.

    Example:
        >>> import torch
        >>> x = torch.tensor([[3.0, 4.0]])
        >>> Cosine(scale=2.0).paired(x, x)
        tensor([2.])
    """

    kind: Literal["critic"] = "critic"
    symmetric = True  # as Gaussian.symmetric

    def __init__(self, scale: float = 1.0, normalize: bool = True) -> None:
        self.normalize = bool(normalize)
        self.scale = _positive("scale", scale)

    def value_range(self) -> tuple[float, float]:
        return (-self.scale, self.scale)

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = _unit(a, b, self.normalize)
        return ((self.scale * a) @ b.mT).clamp(-self.scale, self.scale)

    def paired(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = _unit(a, b, self.normalize)
        return self.scale * (a * b).sum(-1).clamp(-1.0, 1.0)

    def __repr__(self) -> str:
        return f"Cosine(scale={self.scale:g})"


def check_similarity(similarity: Any) -> Similarity:
    """Return ``similarity`` if it follows the ``Similarity`` protocol, else raise
    :class:`SimilarityError` saying what is missing."""
    missing = [
        m for m in ("value_range", "pairwise", "paired") if not callable(getattr(similarity, m, 0))
    ]
    kind = getattr(similarity, "kind", None)
    if missing or kind not in ("log_ratio", "critic"):
        what = f"lacks {', '.join(missing)}" if missing else f"has kind {kind!r}"
        raise SimilarityError(
            f"{similarity!r} is not a similarity: it {what}; a similarity has kind 'log_ratio' "
            "or 'critic' and the methods value_range(), pairwise(a, b) and paired(a, b) "
            "(see fmicl_registry.hookspecs.Similarity)"
        )
    low, high = similarity.value_range()
    if not (float(low) <= float(high)):
        raise SimilarityError(f"{similarity!r}: value_range() gave ({low}, {high}), low > high")
    return similarity


def get_similarity(similarity: str | Similarity = "gaussian", **options: Any) -> Similarity:
    """A registered similarity by name (built with ``options``), or a given object, checked.

    Example:
        >>> import fmicl_registry as fm
        >>> fm.get_similarity("gaussian", gamma=20.0).value_range()
        (-80.0, 0.0)
        >>> fm.get_similarity("cosine").kind
        'critic'
    """
    if isinstance(similarity, str):
        from .components import build

        return check_similarity(build("similarities", similarity, **options))
    if options:
        raise SimilarityError(
            f"options {sorted(options)} apply to a similarity given by name, not to the object "
            f"{similarity!r}; set them on the object instead"
        )
    return check_similarity(similarity)
