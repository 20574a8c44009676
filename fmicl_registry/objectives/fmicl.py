"""The f-MICL objective (Lu et al. 2023): contrastive learning by the f-mutual information.

Its variational lower bound on a batch, negated to be minimised::

    -( mean_i pos(s(z1_i, z2_i)) - alpha * mean_{negative pairs (a, b)} neg(s(a, b)) )

The positive pairs are the two views of a sample; the negative pairs, by default two different
samples of view 1 (``negatives=`` picks other sets; a queue of keys adds more). With the
f-Gaussian similarity, a log ratio ``log_r = log mu - gamma ||x - y||^2``, ``pos = f'(exp(log_r))``
and ``neg = f*(f'(exp(log_r)))``; with a critic ``s`` (cosine), ``pos = s`` and ``neg = f*(s)``,
finite only while the critic stays inside the domain of ``f*`` (:func:`check_domain`). ``alpha``
weighs the negative term (paper: 40 for vision, 409600 for text).

- :func:`fmicl_loss`: the loss, a pure function of the projections (no state, no
  communication); ``return_terms=True`` also returns its two means (:class:`FMICLTerms`);
- :class:`FMICL`: the ``nn.Module``: builds the divergence and similarity by name, refuses a
  critic outside the domain, warns when the terms overflow the dtype in use
  (:func:`term_magnitude`), gathers negatives across processes, keeps a queue of keys and the
  last batch's two means (``last_terms``).
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

import sympy as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..dsl.ops import SlopedTerm
from ..errors import ObjectiveError
from ..similarities import check_similarity, get_similarity
from ._common import check_positive, check_views, gather
from ._pairs import (
    NEGATIVES,
    Block,
    ChunkSize,
    Negatives,
    accumulation_dtype,
    chunk_rows,
    negative_blocks,
    pair_count,
    pair_sum,
    sloped_sum,
)
from .queue import KeyQueue, queue_for

if TYPE_CHECKING:
    from ..divergence import Divergence
    from ..hookspecs import Similarity

Tensor = torch.Tensor
Term = Callable[[Tensor], Tensor]


# ------------------------------------------------------------------------------ the terms
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
    # autograd on, also when the objective is built under torch.no_grad() or inference_mode()
    with torch.inference_mode(False), torch.enable_grad():
        return _term_magnitude(divergence, similarity, alpha, points)


def _term_magnitude(
    divergence: Divergence, similarity: Similarity, alpha: float, points: int
) -> tuple[float, str]:
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


# ------------------------------------------------------------------------------- the loss
class FMICLTerms(NamedTuple):
    """What :func:`fmicl_loss` computed (``return_terms=True``): scalars, differentiable, with
    ``loss = alpha * negative - positive`` up to rounding."""

    #: The loss to minimise (what ``fmicl_loss`` returns without ``return_terms``).
    loss: Tensor
    #: ``mean_i pos(s(z1_i, z2_i))``: the positive term, over the N positive pairs.
    positive: Tensor
    #: ``mean neg(s(a, b))``: the negative term, over every negative pair (batch and queue).
    negative: Tensor


@overload
def fmicl_loss(
    z1: Tensor,
    z2: Tensor,
    divergence: Divergence,
    similarity: Similarity,
    *,
    alpha: float = ...,
    negatives: Negatives = ...,
    queue: Tensor | None = ...,
    keys1: Tensor | None = ...,
    keys2: Tensor | None = ...,
    offset: int = ...,
    chunk_size: ChunkSize = ...,
    return_terms: Literal[False] = ...,
) -> Tensor: ...


@overload
def fmicl_loss(
    z1: Tensor,
    z2: Tensor,
    divergence: Divergence,
    similarity: Similarity,
    *,
    alpha: float = ...,
    negatives: Negatives = ...,
    queue: Tensor | None = ...,
    keys1: Tensor | None = ...,
    keys2: Tensor | None = ...,
    offset: int = ...,
    chunk_size: ChunkSize = ...,
    return_terms: Literal[True],
) -> FMICLTerms: ...


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
    return_terms: bool = False,
) -> Tensor | FMICLTerms:
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
        return_terms: return :class:`FMICLTerms`, the loss with its two means (what a training
            loop reports when the loss stops being finite), instead of the loss alone.

    Returns:
        The loss, a scalar in the inputs' dtype (float32 for bfloat16/float16 inputs), or
        ``FMICLTerms(loss, positive, negative)``.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> from fmicl_registry.similarities import Gaussian
        >>> z = torch.nn.functional.normalize(torch.randn(8, 4), dim=-1)
        >>> loss = fmicl_loss(z, z, fm.get_divergence("kl"), Gaussian(), alpha=1.0)
        >>> G = torch.exp(-torch.cdist(z, z) ** 2)  # KL: f' = log G + 1, f*(f'(G)) = G
        >>> neg = (G.sum() - 8) / 56
        >>> torch.allclose(loss, -(1 - neg), atol=1e-6)
        True
        >>> out = fmicl_loss(z, z, fm.get_divergence("kl"), Gaussian(), return_terms=True)
        >>> float(out.positive), torch.allclose(out.negative, neg, atol=1e-6)  # G(z_i, z_i) = 1
        (1.0, True)
        >>> torch.allclose(out.loss, 40 * out.negative - out.positive)
        True
    """
    check_views(z1, z2)
    alpha = check_positive("alpha", alpha)
    trainable = _trainable(similarity)
    positive, negative = critic_terms(divergence, similarity, trainable=trainable)
    z1, z2, keys1, keys2 = _normalised(z1, z2, keys1, keys2, offset)
    blocks, count = _negative_pairs(negatives, z1, z2, keys1, keys2, offset, queue)
    # A symmetric similarity with nothing learning inside: z1_i z1_j and z1_j z1_i mirror
    # each other, so pair_sum computes the gradient through one side only and doubles it.
    symmetric = _declared_symmetric(similarity) and not trainable
    total = _negative_sum(similarity, negative, blocks, _chunking(chunk_size, trainable), symmetric)
    mean_positive = _positive_mean(similarity, positive, z1, z2)
    # -(mean_positive - alpha * total / count), in two scalar operations instead of four.
    loss = torch.sub(total * (alpha / count), mean_positive)
    return FMICLTerms(loss, mean_positive, total / count) if return_terms else loss


def _as_keys(keys: Tensor | None, view: Tensor, raw: Tensor) -> Tensor:
    """``keys`` normalised; the normalised ``view`` itself when they are its raw rows (one
    process: what the module passes) or not given."""
    return view if keys is None or keys is raw else F.normalize(keys, dim=-1)


def _normalised(
    z1: Tensor, z2: Tensor, keys1: Tensor | None, keys2: Tensor | None, offset: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The views and the keys of every process on the unit sphere, the batch checked to sit at
    ``offset`` in the keys."""
    x1, x2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    k1, k2 = _as_keys(keys1, x1, z1), _as_keys(keys2, x2, z2)
    if k1.shape != k2.shape or not 0 <= offset <= len(k1) - len(x1):
        raise ObjectiveError(
            f"keys1 {tuple(k1.shape)} and keys2 {tuple(k2.shape)} must have the same "
            f"shape and hold the batch ({len(x1)} rows) at offset {offset}"
        )
    return x1, x2, k1, k2


def _negative_pairs(
    negatives: Negatives,
    z1: Tensor,
    z2: Tensor,
    keys1: Tensor,
    keys2: Tensor,
    offset: int,
    queue: Tensor | None,
) -> tuple[list[Block], int]:
    """The blocks of negative pairs (``negatives`` in the batch, then ``z1`` against the
    queue) and how many pairs they hold; refused when none."""
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
    return blocks, count


def _chunking(chunk_size: ChunkSize, trainable: bool) -> ChunkSize:
    """``chunk_size``, or None (dense) for a similarity that learns: the chunked path
    differentiates its two inputs only, the dense one lets autograd see everything."""
    if not trainable or chunk_size is None:
        return chunk_size
    if chunk_size != "auto":
        raise ObjectiveError(
            "a similarity with trainable tensors needs chunk_size=None (the chunked path "
            "would drop their gradients from the negative term)"
        )
    return None


def _negative_sum(
    similarity: Similarity,
    negative: Term,
    blocks: list[Block],
    chunk_size: ChunkSize,
    symmetric: bool,
) -> Tensor:
    """``sum neg(s(a, b))`` over every negative pair, in at least float32."""
    if isinstance(negative, SlopedTerm):  # the sums differentiate it by its slope
        pairs, term = similarity.pairwise, negative
    else:

        def pairs(a: Tensor, b: Tensor) -> Tensor:
            return negative(similarity.pairwise(a, b))

        term = None
    sums = [
        pair_sum(pairs, a, b, exclude, chunk_size, term=term, symmetric=symmetric)
        for a, b, exclude in blocks
    ]
    return functools.reduce(torch.add, sums)


def _positive_mean(similarity: Similarity, positive: Term, z1: Tensor, z2: Tensor) -> Tensor:
    """``mean_i pos(s(z1_i, z2_i))``, in at least float32."""
    if isinstance(positive, SlopedTerm):
        return sloped_sum(similarity.paired(z1, z2), positive) / len(z1)
    return positive(similarity.paired(z1, z2)).mean(dtype=accumulation_dtype(z1.dtype))


# ----------------------------------------------------------------------------- the module
class OverflowRiskWarning(UserWarning):
    """The f-MICL terms reach values beyond the largest finite number of the dtype in use."""


def _parameters(kind: str, name: str) -> set[str]:
    from ..components import registry

    factory = getattr(registry().get(kind, name), "factory", None)
    try:
        return set(inspect.signature(factory).parameters) if factory else set()
    except (TypeError, ValueError):  # no signature to read
        return set()


def _divergence(divergence: Any, options: Mapping[str, Any] | None) -> Divergence:
    if isinstance(divergence, str):
        from ..components import get_divergence

        return get_divergence(divergence, **dict(options or {}))
    if options:
        raise ObjectiveError(
            "divergence_options apply to a divergence given by name; for an object, use "
            "divergence.with_params(...)"
        )
    missing = [
        m for m in ("positive_term", "negative_term", "f_star") if not hasattr(divergence, m)
    ]
    if missing or not hasattr(divergence, "conjugate_domain"):
        raise ObjectiveError(
            f"divergence must be a registered name or a Divergence (fm.define_divergence(...)); "
            f"got {divergence!r}"
        )
    return divergence


class FMICL(nn.Module):
    """The f-MICL objective (Lu et al. 2023), to minimise::

        -( mean_i pos(s(z1_i, z2_i)) - alpha * mean_{i != j} neg(s(z1_i, z1_j)) )

    With the f-Gaussian similarity ``pos = f'(G)``, ``neg = f*(f'(G))``; with a critic ``s``
    (cosine), ``pos = s``, ``neg = f*(s)``, refused at construction when the critic's range
    leaves the domain of ``f*``.

    Args:
        divergence: a registered name (``"js"``) or a ``Divergence`` object.
        similarity: a registered name (``"gaussian"``, ``"cosine"``) or a ``Similarity``.
        alpha: weight of the negative term (paper: 40 vision, 409600 text).
        gamma, mu: options of a similarity given by name (gaussian: ``log mu - gamma d^2``;
            paper: gamma 1 vision, 20 text); None leaves the similarity's default.
        negatives: ``"view1"`` (paper), ``"both"``, ``"cross"``, ``"simclr"`` or ``"none"``
            (queue only); see ``_pairs.negative_blocks``.
        queue_size: keep a queue of this many keys (the second view, detached) as extra
            negatives, MoCo style; 0: none. ``forward(z1, z2, queue=keys)`` passes keys instead.
        gather: gather negatives across processes when ``torch.distributed`` is initialised.
        chunk_size: ``"auto"``, None (dense) or rows per chunk for the negative sums
            (``_pairs.pair_sum``).
        divergence_options, similarity_options: extra keywords for building them by name.
            A similarity by name whose factory takes ``normalize`` gets ``normalize=False``
            (the objective normalises the projections once itself).

    Example:
        >>> import torch, fmicl_registry as fm
        >>> loss_fn = fm.get_objective("fmicl", divergence="js", alpha=40.0, gamma=1.0)
        >>> z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
        >>> loss_fn(z1, z2).shape
        torch.Size([])
    """

    def __init__(
        self,
        divergence: str | Divergence = "js",
        similarity: str | Similarity = "gaussian",
        alpha: float = 40.0,
        gamma: float | None = None,
        mu: float | None = None,
        negatives: Negatives = "view1",
        queue_size: int = 0,
        gather: bool = True,
        chunk_size: ChunkSize = "auto",
        divergence_options: Mapping[str, Any] | None = None,
        similarity_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if negatives not in NEGATIVES:
            raise ObjectiveError(
                f"negatives must be one of {', '.join(NEGATIVES)}; got {negatives!r}"
            )
        chunk_rows(1, 1, chunk_size)  # validates
        for name, given in (
            ("divergence_options", divergence_options),
            ("similarity_options", similarity_options),
        ):
            if given is not None and not isinstance(given, Mapping):
                raise ObjectiveError(
                    f"{name} must be a table of options, e.g. {{gamma = 0.5}} (in a spec: "
                    f"{name} = {{...}}; --set 'objective.{name}={{...}}'), got {given!r}"
                )
        self.divergence = _divergence(divergence, divergence_options)
        options = {k: v for k, v in (("gamma", gamma), ("mu", mu)) if v is not None}
        options.update(similarity_options or {})
        if isinstance(similarity, str):
            if "normalize" in _parameters("similarities", similarity):
                options.setdefault("normalize", False)  # the projections arrive normalised
            self.similarity = get_similarity(similarity, **options)
        elif options:
            raise ObjectiveError(
                f"gamma, mu and similarity_options apply to a similarity given by name; set "
                f"them on {similarity!r} instead"
            )
        else:
            self.similarity = check_similarity(similarity)
        check_domain(self.divergence, self.similarity)
        self.alpha = check_positive("alpha", alpha)
        self.negatives = negatives
        self.gather = gather
        self.chunk_size = chunk_size
        self.queue = KeyQueue(queue_size) if queue_size else None
        self._magnitude = term_magnitude(self.divergence, self.similarity, self.alpha)
        self._checked: set[torch.dtype] = set()
        #: The two means of the last batch, detached (a training loop's NaN guard reads them).
        self.last_terms: dict[str, Tensor] = {}

    def _check_dtype(self, z: Tensor) -> None:
        dtype = z.dtype
        try:
            if torch.is_autocast_enabled(z.device.type):
                dtype = torch.get_autocast_dtype(z.device.type)
        except RuntimeError:  # a device type without autocast (meta, say): its own dtype counts
            pass
        if dtype in self._checked or not dtype.is_floating_point:
            return
        self._checked.add(dtype)
        largest = torch.finfo(dtype).max
        value, where = self._magnitude
        if value > largest:
            warnings.warn(
                f"f-MICL with divergence {getattr(self.divergence, 'name', '?')!r}, "
                f"{self.similarity!r} and alpha={self.alpha:g}: {where} exceeds the largest "
                f"{dtype} number ({largest:.3g}), so the loss or its gradient becomes inf for "
                "such pairs. Use float64, a smaller gamma, or another divergence.",
                OverflowRiskWarning,
                stacklevel=3,
            )

    def forward(self, z1: Tensor, z2: Tensor, queue: Tensor | None = None) -> Tensor:
        """The loss of one batch; ``queue``: ``(K, D)`` extra negatives (instead of the
        module's own queue, which is then not updated)."""
        self._check_dtype(z1)
        keys1, offset = gather(z1, self.gather)
        keys2, _ = gather(z2, self.gather)
        queue, own = queue_for(self.queue, queue, z2)
        result = fmicl_loss(
            z1,
            z2,
            self.divergence,
            self.similarity,
            alpha=self.alpha,
            negatives=self.negatives,
            queue=queue,
            keys1=keys1,
            keys2=keys2,
            offset=offset,
            chunk_size=self.chunk_size,
            return_terms=True,
        )
        self.last_terms = {
            "positive term": result.positive.detach(),
            "negative term": result.negative.detach(),
        }
        if own is not None and self.training:
            own.push(keys2.detach())
        return result.loss

    def extra_repr(self) -> str:
        name = getattr(self.divergence, "name", "?")
        return (
            f"divergence={name!r}, similarity={self.similarity!r}, alpha={self.alpha:g}, "
            f"negatives={self.negatives!r}"
        )
