"""The objectives as pure functions of the projections (no state, no communication).

- :func:`fmicl_loss`: f-MICL (Lu et al. 2023) with any divergence and similarity;
- :func:`infonce_loss`: NT-Xent exactly as SimCLR (Chen et al. 2020, eq. 1);
- :func:`moco_infonce_loss`: InfoNCE of queries against keys and a queue (He et al. 2020, eq. 1);
- :func:`align_uniform_loss`: alignment + uniformity (Wang and Isola 2020, eq. 4-5).

Each function L2-normalises its inputs. For gathered negatives (several processes), pass the
gathered projections as ``keys``/``keys1``/``keys2`` and ``offset``, the index of this
process's first row in them; the modules in ``objectives.modules`` do that.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import sympy as sp
import torch
import torch.nn.functional as F

from ..dsl.ops import SlopedTerm
from ..errors import ObjectiveError
from ._pairs import (
    ChunkSize,
    Negatives,
    accumulation_dtype,
    negative_blocks,
    pair_count,
    pair_sum,
    sloped_sum,
)

if TYPE_CHECKING:
    from ..divergence import Divergence
    from ..hookspecs import Similarity

Tensor = torch.Tensor
Term = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------------------------- f-MICL
def critic_terms(
    divergence: Divergence, similarity: Similarity, *, trainable: bool | None = None
) -> tuple[Term, Term]:
    """``(positive, negative)`` as functions of the similarity values (Lu et al. 2023).

    A log ratio ``log_r`` gives ``f'(exp(log_r))`` and ``f*(f'(exp(log_r)))``: for a
    ``Divergence``, its terms specialised to the similarity's ``value_range()``
    (``Divergence.terms_on``: the fewest forms accurate on that range, differentiated through
    their slopes, :class:`~fmicl_registry.dsl.ops.SlopedTerm`); for a similarity with
    trainable tensors, whose range moves as it learns, the general forms with their slopes;
    for another object with ``positive_term``/``negative_term``, those. A critic ``s`` gives
    ``s`` and ``f*(s)``. The specialised forms are accurate on the declared range; a
    similarity must not return values outside it (the built-in ones clamp).
    """
    if similarity.kind == "log_ratio":
        terms_on = getattr(divergence, "terms_on", None)
        if terms_on is None:
            return divergence.positive_term, divergence.negative_term
        if _trainable(similarity) if trainable is None else trainable:
            terms = terms_on(-math.inf, math.inf)
        else:
            terms = terms_on(*similarity.value_range())
        return terms.positive, terms.negative
    return (lambda s: s), divergence.f_star


def _number(value: float) -> sp.Expr:
    if math.isinf(value):
        return sp.oo if value > 0 else -sp.oo
    return sp.Rational(value)


def _contains(domain: sp.Interval, value: float) -> bool:
    point = _number(value)
    if point.is_infinite:  # an unbounded critic: the domain must be unbounded that way too
        return bool(domain.sup == sp.oo if point > 0 else domain.inf == -sp.oo)
    return domain.contains(point) is sp.true


def check_domain(divergence: Divergence, similarity: Similarity) -> None:
    """Refuse a critic similarity whose values leave the domain of ``f*`` (Lu et al. 2023:
    ``f*(s)`` is only finite there; the paper reports cosine failing with VLC).

    Raises:
        ObjectiveError: with the range, the domain and what to use instead.

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.similarities import Cosine
        >>> check_domain(fm.get_divergence("kl"), Cosine())  # f* = exp(t - 1): any t
        >>> check_domain(fm.get_divergence("vlc"), Cosine())
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.ObjectiveError: ...
    """
    if similarity.kind != "critic":
        return
    low, high = (float(v) for v in similarity.value_range())
    domain = divergence.conjugate_domain
    if _contains(domain, low) and _contains(domain, high):
        return
    name = getattr(divergence, "name", repr(divergence))
    hint = ""
    if _contains(domain, 0.0):
        room = min(-float(domain.inf), float(domain.sup))
        hint = f", or a critic scale below {room:.4g} (similarity_options={{'scale': ...}})"
    raise ObjectiveError(
        f"the {similarity!r} critic takes values in [{low:g}, {high:g}], which is not inside "
        f"the domain of f* for divergence {name!r}, {domain} (f* is infinite or undefined "
        f"outside it, so the negative term f*(s) would be inf or NaN). Use "
        f"similarity='gaussian' (the f-Gaussian log ratio of Lu et al. 2023, works with "
        f"every divergence){hint}."
    )


def term_magnitude(
    divergence: Divergence, similarity: Similarity, alpha: float = 1.0, points: int = 513
) -> tuple[float, str]:
    """The largest magnitude f-MICL's terms and their derivatives reach over the similarity's
    range, computed in float64, and where: ``(value, description)``.

    The derivative is scaled by the width of the range (a bound on how much a unit feature
    moves the similarity), the negative term by ``alpha``. Above a dtype's largest finite
    number, the loss or its gradient overflows to inf in that dtype.

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.similarities import Gaussian
        >>> value, where = term_magnitude(fm.get_divergence("neyman"), Gaussian(gamma=20.0))
        >>> value > 3.4e38, where.startswith("the positive term")
        (True, True)
    """
    low, high = (float(v) for v in similarity.value_range())
    width = max(high - low, 1.0)
    s = torch.linspace(low, high, points, dtype=torch.float64, requires_grad=True)
    grid = s.detach()
    positive, negative = critic_terms(divergence, similarity)
    worst, where = 0.0, ""
    for label, term, weight in (("positive", positive, 1.0), ("negative", negative, abs(alpha))):
        values = term(s)
        (slope,) = torch.autograd.grad(values.sum(), s)
        for kind, magnitude in (
            ("", weight * values.detach().abs()),
            (" gradient", weight * width * slope.abs()),
        ):
            magnitude = magnitude.nan_to_num(nan=math.inf)
            i = int(magnitude.argmax())
            if float(magnitude[i]) > worst:
                worst = float(magnitude[i])
                scaled = f" times {weight:g}" if weight != 1.0 and label == "negative" else ""
                where = (
                    f"the {label} term{kind}{scaled} at {similarity.kind} {float(grid[i]):.4g} "
                    f"(magnitude {worst:.3g})"
                )
    return worst, where


def _check_views(z1: Tensor, z2: Tensor, *, at_least: int = 1) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ObjectiveError(
            f"expected two views of shape (N, D), the same for both; got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if z1.dtype != z2.dtype or z1.device != z2.device:
        raise ObjectiveError(
            f"the two views must share dtype and device; got {z1.dtype} on {z1.device} and "
            f"{z2.dtype} on {z2.device}"
        )
    if len(z1) < at_least:
        raise ObjectiveError(
            f"this loss needs a batch of at least {at_least} samples (negatives come from the "
            f"other samples); got {len(z1)}"
        )


def check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ObjectiveError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ObjectiveError(f"{name} must be finite, got {value!r}")
    return float(value)


def _trainable(similarity: object) -> bool:
    """Whether the similarity holds tensors that learn (a learnable gamma, say)."""
    if isinstance(similarity, torch.nn.Module) and any(
        p.requires_grad for p in similarity.parameters()
    ):
        return True
    return any(isinstance(v, Tensor) and v.requires_grad for v in vars(similarity).values())


def _declared_symmetric(similarity: object) -> bool:
    """``similarity.symmetric``, trusted only where it was declared for the ``pairwise`` in use:
    on the instance, or on the class that defines ``pairwise`` or a subclass of it (a subclass
    that overrides ``pairwise`` does not inherit its parent's declaration)."""
    own = getattr(similarity, "__dict__", {})
    if "symmetric" in own:
        return bool(own["symmetric"])
    mro = type(similarity).__mro__
    declared = next((i for i, cls in enumerate(mro) if "symmetric" in vars(cls)), None)
    defined = next((i for i, cls in enumerate(mro) if "pairwise" in vars(cls)), None)
    if declared is None or defined is None or declared > defined:
        return False
    return bool(vars(mro[declared])["symmetric"])


def fmicl_loss(
    z1: Tensor,
    z2: Tensor,
    divergence: Divergence,
    similarity: Similarity,
    *,
    alpha: float = 40.0,
    negatives: Negatives = "view1",
    queue: Tensor | None = None,
    keys1: Tensor | None = None,
    keys2: Tensor | None = None,
    offset: int = 0,
    chunk_size: ChunkSize = "auto",
    terms: dict[str, Tensor] | None = None,
) -> Tensor:
    """The f-MICL loss (Lu et al. 2023), to minimise::

        -( mean_i pos(s(z1_i, z2_i)) - alpha * mean_{negative pairs (a, b)} neg(s(a, b)) )

    with ``pos``/``neg`` from :func:`critic_terms`: for the f-Gaussian log ratio,
    ``f'(G)`` and ``f*(f'(G))``. The negative pairs are chosen by ``negatives`` (see
    ``_pairs.negative_blocks``; default: ``z1_i, z1_j``, ``i != j``, the paper's formula) plus
    every ``(z1_i, queue_k)``; the mean runs over all of them together.

    With a ``Divergence`` and a log-ratio similarity, the terms are the ones specialised to the
    similarity's ``value_range()`` (``Divergence.terms_on``) and both sums are differentiated
    by the terms' slopes (``_pairs.pair_sum(term=...)``, ``_pairs.sloped_sum``): the
    backward pass over the ``N x K`` pairs is ``slope(log_r)`` times a number, and the excluded
    pairs are zeroed on their diagonals. A symmetric similarity (``similarity.symmetric``,
    nothing learning inside) differentiates a batch against itself through one side, doubled.

    Args:
        z1, z2: ``(N, D)`` projections of the two views (normalised here).
        divergence, similarity: objects, e.g. ``fm.get_divergence("js")``, ``Gaussian()``;
            a critic similarity must fit the divergence (:func:`check_domain`, not rechecked).
        alpha: weight of the negative term (paper: 40 for vision, 409600 for text).
        queue: ``(K, D)`` extra negative keys (MoCo style), or None.
        keys1, keys2, offset: the projections of all processes and the index of ``z1[0]``
            in them (distributed negatives); default: ``z1``, ``z2``, 0.
        chunk_size: how the negative sums run (``_pairs.pair_sum``).
        terms: a dict that receives the two means, detached: ``"positive term"`` and
            ``"negative term"`` (what a training loop reports when the loss stops being finite).

    Returns:
        A scalar in the inputs' dtype (float32 for bfloat16/float16 inputs).

    Example:
        >>> import torch, fmicl_registry as fm
        >>> from fmicl_registry.similarities import Gaussian
        >>> z = torch.nn.functional.normalize(torch.randn(8, 4), dim=-1)
        >>> loss = fmicl_loss(z, z, fm.get_divergence("kl"), Gaussian(), alpha=1.0)
        >>> G = torch.exp(-torch.cdist(z, z) ** 2)  # KL: f' = log G + 1, f*(f'(G)) = G
        >>> neg = (G.sum() - 8) / 56
        >>> torch.allclose(loss, -(1 - neg), atol=1e-6)
        True
    """
    _check_views(z1, z2)
    alpha = check_positive("alpha", alpha)
    trainable = _trainable(similarity)
    positive, negative = critic_terms(divergence, similarity, trainable=trainable)
    # Keys that are the views themselves (one process: what the modules pass) are not
    # normalised a second time.
    raw1, raw2 = z1, z2
    z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    keys1 = z1 if keys1 is None or keys1 is raw1 else F.normalize(keys1, dim=-1)
    keys2 = z2 if keys2 is None or keys2 is raw2 else F.normalize(keys2, dim=-1)
    if keys1.shape != keys2.shape or not 0 <= offset <= len(keys1) - len(z1):
        raise ObjectiveError(
            f"keys1 {tuple(keys1.shape)} and keys2 {tuple(keys2.shape)} must have the same "
            f"shape and hold the batch ({len(z1)} rows) at offset {offset}"
        )
    blocks = negative_blocks(negatives, z1, z2, keys1, keys2, offset)
    if queue is not None:
        blocks.append((z1, F.normalize(queue.to(z1.dtype), dim=-1), ()))
    count = sum(pair_count(len(a), len(b), exclude) for a, b, exclude in blocks)
    if count == 0 and negatives == "none":
        raise ObjectiveError(
            "negatives='none' takes every negative from a queue: pass queue=keys (K, D) or "
            "build the objective with queue_size > 0"
        )
    if count == 0:
        raise ObjectiveError(
            f"no negative pairs: negatives={negatives!r} with a batch of {len(keys1)}; use a "
            "batch of at least 2"
        )

    if isinstance(negative, SlopedTerm):  # the sums differentiate it by its slope
        pairs, term = similarity.pairwise, negative
    else:

        def pairs(a: Tensor, b: Tensor) -> Tensor:
            return negative(similarity.pairwise(a, b))

        term = None

    if trainable and chunk_size is not None:
        # The chunked path differentiates its two inputs only; a learning similarity needs the
        # dense path, where autograd sees everything.
        if chunk_size != "auto":
            raise ObjectiveError(
                "a similarity with trainable tensors needs chunk_size=None (the chunked path "
                "would drop their gradients from the negative term)"
            )
        chunk_size = None

    # A symmetric similarity with nothing learning inside: z1_i z1_j and z1_j z1_i mirror
    # each other, so pair_sum computes the gradient through one side only and doubles it.
    symmetric = _declared_symmetric(similarity) and not trainable
    sums = [
        pair_sum(pairs, a, b, exclude, chunk_size, term=term, symmetric=symmetric)
        for a, b, exclude in blocks
    ]
    total = functools.reduce(torch.add, sums)
    if isinstance(positive, SlopedTerm):
        mean_positive = sloped_sum(similarity.paired(z1, z2), positive) / len(z1)
    else:
        acc = accumulation_dtype(z1.dtype)
        mean_positive = positive(similarity.paired(z1, z2)).mean(dtype=acc)
    if terms is not None:
        terms["positive term"] = mean_positive.detach()
        terms["negative term"] = total.detach() / count
    # -(mean_positive - alpha * total / count), in two scalar operations instead of four.
    return torch.sub(total * (alpha / count), mean_positive)


# ------------------------------------------------------------------------------- baselines
def infonce_loss(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.5,
    *,
    keys1: Tensor | None = None,
    keys2: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """NT-Xent, exactly as SimCLR (Chen et al. 2020, eq. 1 and Algorithm 1).

    The 2N views are anchors; each has its other view as positive and the 2N - 2 views of
    the other samples as negatives; cosine similarities over ``temperature``; the loss is
    the mean over the 2N anchors of ``-log softmax`` of the positive.

    Example:
        >>> import math, torch
        >>> z = torch.eye(4)  # identical views, orthogonal samples, temperature 0.5:
        >>> round(float(infonce_loss(z, z)), 4), round(-math.log(math.e**2 / (math.e**2 + 6)), 4)
        (0.5944, 0.5944)
    """
    _check_views(z1, z2, at_least=2)
    temperature = check_positive("temperature", temperature)
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    keys = z if keys1 is None else F.normalize(torch.cat([keys1, keys2]), dim=-1)  # type: ignore[list-item]
    n, total = len(z1), len(keys) // 2
    logits = z @ keys.mT / temperature
    rows = torch.arange(2 * n, device=z.device)
    first = rows < n
    own = torch.where(first, offset + rows, total + offset + rows - n)
    other = torch.where(first, total + offset + rows, offset + rows - n)
    logits = logits.masked_fill(torch.arange(2 * total, device=z.device) == own[:, None], -math.inf)
    return F.cross_entropy(logits, other)


def moco_infonce_loss(
    q: Tensor,
    k: Tensor,
    queue: Tensor | None = None,
    temperature: float = 0.2,
    *,
    keys: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """InfoNCE of queries against keys (He et al. 2020, MoCo eq. 1).

    With a ``queue`` (``(K, D)``), MoCo v2: each query ``q_i`` has its key ``k_i`` as
    positive and the K queued keys as negatives. Without one, MoCo v3 (Chen et al. 2021):
    the other keys of the batch (``keys``: gathered from every process, ``q[0]``'s key at
    ``offset``) are the negatives. Keys are usually detached (momentum encoder).

    Example:
        >>> import math, torch
        >>> q = torch.eye(3)  # logits: 1 (positive), then -1, 0, 0 (queue)
        >>> round(float(moco_infonce_loss(q, q, queue=-q, temperature=1.0)), 4)
        0.6265
        >>> round(-math.log(math.e / (math.e + 1 / math.e + 2)), 4)
        0.6265
    """
    _check_views(q, k, at_least=1 if queue is not None else 2)
    temperature = check_positive("temperature", temperature)
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    if queue is None:
        keys = k if keys is None else F.normalize(keys, dim=-1)
        labels = offset + torch.arange(len(q), device=q.device)
        return F.cross_entropy(q @ keys.mT / temperature, labels)
    negatives = q @ F.normalize(queue.to(q.dtype), dim=-1).mT
    logits = torch.cat([(q * k).sum(-1, keepdim=True), negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def uniformity(x: Tensor, t: float = 2.0) -> Tensor:
    """``log mean_{i != j} exp(-t ||x_i - x_j||^2)`` of normalised rows (Wang and Isola 2020,
    eq. 5), by logsumexp.

    Example:
        >>> import torch
        >>> round(float(uniformity(torch.eye(3), t=2.0)), 4)  # every distance^2 is 2
        -4.0
    """
    x = F.normalize(x, dim=-1)
    n = len(x)
    squared = (2 - 2 * (x @ x.mT)).clamp(0.0, 4.0)
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    return torch.logsumexp((-t * squared).masked_fill(eye, -math.inf).flatten(), 0) - math.log(
        n * (n - 1)
    )


def align_uniform_loss(
    z1: Tensor, z2: Tensor, *, alpha: float = 2.0, t: float = 2.0, lam: float = 1.0
) -> Tensor:
    """Alignment + uniformity (Wang and Isola 2020, eq. 4-5, as in their reference code)::

        mean_i ||x_i - y_i||^alpha + lam * (uniformity(x, t) + uniformity(y, t)) / 2

    Example:
        >>> import torch
        >>> round(float(align_uniform_loss(torch.eye(3), torch.eye(3))), 4)
        -4.0
    """
    _check_views(z1, z2, at_least=2)
    x, y = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    align = (x - y).norm(dim=-1).pow(alpha).mean()
    return align + lam * (uniformity(x, t) + uniformity(y, t)) / 2
