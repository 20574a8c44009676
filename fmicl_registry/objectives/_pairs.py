"""The negative pairs of f-MICL: which pairs (:func:`negative_blocks`) and the sums of a term
over them without holding every pair (:func:`pair_sum`). Private to ``objectives``.

``pair_sum(fn, a, b)`` is ``sum_{i, j} fn(a, b)[i, j]`` over the pairs ``(i, j)`` whose offset
``j - i`` is not excluded (the self pairs of a batch against itself, offset 0). Up to
:data:`CHUNK_PAIRS` pairs it runs densely (autograd keeps the ``(N, K)`` intermediates); above,
it walks chunks of rows and keeps nothing but the inputs: the backward pass recomputes each
chunk and differentiates it on the spot. Same values and gradients, memory ``O(chunk * K)``
instead of ``O(N * K)``, at the price of one more forward pass over the pairs.

With ``term=`` (a :class:`~fmicl_registry.dsl.ops.SlopedTerm`), ``fn`` gives the similarity
values and the sum is of ``term(fn(a, b))``, differentiated through the term's slope by
:func:`sloped_sum`: the forward pass keeps only the similarity values, the excluded pairs are
zeroed on their diagonals in place (no mask), and the backward pass is ``slope(values)``
times the incoming gradient (the chunked path recomputes the similarity values only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, get_args

import torch
from torch.autograd.function import FunctionCtx

from ..dsl.ops import SlopedTerm, functorch_active, plain
from ..errors import ObjectiveError

Tensor = torch.Tensor
#: ``fn(a, b) -> (len(a), len(b))``: the term of every pair of rows.
PairFn = Callable[[Tensor, Tensor], Tensor]
ChunkSize = int | Literal["auto"] | None
#: ``(anchors, keys, excluded offsets j - i)``: the pairs of one :func:`pair_sum`.
Block = tuple[Tensor, Tensor, tuple[int, ...]]
Negatives = Literal["view1", "both", "cross", "simclr", "none"]
NEGATIVES: tuple[str, ...] = get_args(Negatives)

#: ``chunk_size="auto"`` runs densely up to this many pairs, else in chunks of about as many:
#: per device type, default for others. On 2 CPU cores, 2**20-pair chunks (4 MiB per float32
#: intermediate) ran fastest (cache) and beat the dense path from 2**22 pairs on; on a GPU
#: bigger chunks mean fewer kernel launches (2**22: 16 MiB per intermediate; not tuned).
CHUNK_PAIRS = {"cpu": 2**20, "default": 2**22}


def negative_blocks(
    negatives: str, z1: Tensor, z2: Tensor, keys1: Tensor, keys2: Tensor, offset: int
) -> list[Block]:
    """The negative pairs as ``(anchors, keys, excluded offsets j - i)`` blocks.

    ``view1``: ``z1_i`` with ``z1_j``, ``i != j`` (the paper's formula); ``both``: that and
    the same within view 2; ``cross``: ``z1_i`` with ``z2_j``, ``i != j``; ``simclr``: every
    view of the other samples (2N - 2 per anchor, as NT-Xent); ``none``: no batch negatives
    (a queue gives them). ``offset`` is the index of ``z1[0]`` in ``keys1``.

    Example:
        >>> z = torch.zeros(3, 2)
        >>> [(len(a), len(b), skip) for a, b, skip in negative_blocks("simclr", z, z, z, z, 0)]
        [(3, 6, (0, 3)), (3, 6, (0, 3))]
    """
    if negatives == "simclr":
        n = len(keys1)
        keys = torch.cat([keys1, keys2])  # z1_i is keys[offset + i]; z2_i is keys[n + offset + i]
        others: tuple[int, ...] = (offset, n + offset)
        return [(z1, keys, others), (z2, keys, others)]
    own: tuple[int, ...] = (offset,)
    blocks: dict[str, list[Block]] = {
        "view1": [(z1, keys1, own)],
        "both": [(z1, keys1, own), (z2, keys2, own)],
        "cross": [(z1, keys2, own)],
        "none": [],
    }
    if negatives not in blocks:
        raise ObjectiveError(f"negatives must be one of {', '.join(NEGATIVES)}; got {negatives!r}")
    return blocks[negatives]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Sums run in at least float32 (bfloat16 and float16 sums lose the small terms)."""
    return torch.promote_types(dtype, torch.float32)


def pair_count(rows: int, cols: int, exclude: Iterable[int] = ()) -> int:
    """How many pairs ``(i, j)``, ``0 <= i < rows``, ``0 <= j < cols``, have ``j - i`` outside
    ``exclude``.

    Example:
        >>> pair_count(4, 4, exclude=(0,))  # i != j
        12
    """
    count = rows * cols
    for k in set(exclude):
        count -= max(0, min(rows, cols - k) - max(0, -k))
    return count


def _masked(values: Tensor, start: int, exclude: tuple[int, ...]) -> Tensor:
    # Rows start.. of the full matrix: pair (i, i + k) lies on diagonal start + k of the chunk.
    if not exclude:
        return values
    mask = torch.zeros(values.shape, dtype=torch.bool, device=values.device)
    for k in exclude:
        if -values.shape[0] < start + k < values.shape[1]:
            mask.diagonal(start + k).fill_(True)
    return values.masked_fill(mask, 0)


def _zero_diagonals(values: Tensor, start: int, exclude: tuple[int, ...]) -> None:
    """Zero, in place, the excluded pairs of rows ``start..`` (see :func:`_masked`)."""
    for k in exclude:
        if -values.shape[0] < start + k < values.shape[1]:
            values.diagonal(start + k).zero_()


def _own(out: Tensor, x: Tensor) -> Tensor:
    """``out``, or a copy where it shares memory with ``x`` (a form that returns ``log_r``
    itself), so that it can be changed in place."""
    if out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        return out.clone()
    return out


def _value_sum(
    x: Tensor, value: Callable[[Tensor], Tensor], start: int, exclude: tuple[int, ...]
) -> Tensor:
    with plain():  # no autograd through the form: the gradient is the slope
        values = value(x)
    if exclude:
        values = _own(values, x)
        _zero_diagonals(values, start, exclude)
    return values.sum(dtype=accumulation_dtype(x.dtype))


class _SlopedSum(torch.autograd.Function):
    """``sum term.value(x)`` over the pairs not excluded; gradient ``term.slope(x)``."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        value: Callable[[Tensor], Tensor],
        slope: Callable[[Tensor], Tensor],
        start: int,
        exclude: tuple[int, ...],
    ) -> Tensor:
        ctx.save_for_backward(x)
        ctx.slope, ctx.start, ctx.exclude = slope, start, exclude  # type: ignore[attr-defined]
        return _value_sum(x, value, start, exclude)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        slope, start, exclude = ctx.slope, ctx.start, ctx.exclude  # type: ignore[attr-defined]
        # With create_graph, differentiable operations only; else in place (no second N x K
        # allocation, which costs page faults on the CPU). A 0-dim float32 grad keeps a
        # bfloat16 x's dtype either way.
        graph = torch.is_grad_enabled()
        out = slope(x) * grad if graph else _own(slope(x), x).mul_(grad)
        _zero_diagonals(out, start, exclude)
        return out, None, None, None, None


def _plain_sum(values: Tensor, term: SlopedTerm | None, exclude: tuple[int, ...]) -> Tensor:
    """The sum by ordinary autograd (the term's own Function has a vmap rule)."""
    acc = accumulation_dtype(values.dtype)
    return _masked(values if term is None else term(values), 0, exclude).sum(dtype=acc)


class _MirroredSum(torch.autograd.Function):
    """``pair_sum(fn, a, a)`` for a symmetric ``fn``: its gradient is twice the gradient through
    the first argument, so the forward pass keeps the graph of ``pair_sum(fn, a, a.detach())``
    and the backward pass doubles it (one matrix product fewer). A backward pass that builds a
    graph (``create_graph=True``, for second derivatives) differentiates both sides instead,
    since the second derivative also has the cross term."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        a: Tensor,
        fn: PairFn,
        exclude: tuple[int, ...],
        chunk_size: ChunkSize,
        term: SlopedTerm | None,
    ) -> Tensor:
        with torch.enable_grad():
            a_ = a.detach().requires_grad_()
            half = pair_sum(fn, a_, a_.detach(), exclude, chunk_size, term=term)
        ctx.save_for_backward(a)
        ctx.graph = (a_, half)  # type: ignore[attr-defined]
        ctx.args = (fn, exclude, chunk_size, term)  # type: ignore[attr-defined]
        return half.detach()

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph: both sides, differentiably
            (a,) = ctx.saved_tensors  # type: ignore[attr-defined]
            fn, exclude, chunk_size, term = ctx.args  # type: ignore[attr-defined]
            total = pair_sum(fn, a, a, exclude, chunk_size, term=term)
            (out,) = torch.autograd.grad(total, a, grad, create_graph=True)
        else:
            a_, half = ctx.graph  # type: ignore[attr-defined]
            (out,) = torch.autograd.grad(half, a_, 2 * grad, retain_graph=True)
        return out, None, None, None, None


def sloped_sum(values: Tensor, term: SlopedTerm, exclude: Iterable[int] = ()) -> Tensor:
    """``sum term(values)`` over the entries whose diagonal offset is not in ``exclude``, in at
    least float32, differentiated through ``term.slope``: the same value and gradient as
    ``_masked(term(values), 0, exclude).sum()`` with a few kernels instead of one per operation
    of the term's form and mask.

    Example:
        >>> import torch
        >>> from fmicl_registry.dsl.ops import SlopedTerm
        >>> x = torch.zeros(3, 3, requires_grad=True)
        >>> total = sloped_sum(x, SlopedTerm(torch.exp, torch.exp), exclude=(0,))
        >>> total.backward()
        >>> total.item(), x.grad.diagonal().tolist()
        (6.0, [0.0, 0.0, 0.0])
    """
    excluded = tuple(sorted(set(exclude)))
    if functorch_active():
        return _plain_sum(values, term, excluded)
    return _SlopedSum.apply(values, term.value, term.slope, 0, excluded)


class _ChunkedPairSum(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        a: Tensor,
        b: Tensor,
        fn: PairFn,
        exclude: tuple[int, ...],
        chunk: int,
        term: SlopedTerm | None,
    ) -> Tensor:
        ctx.save_for_backward(a, b)
        ctx.fn, ctx.exclude, ctx.chunk = fn, exclude, chunk  # type: ignore[attr-defined]
        ctx.term = term  # type: ignore[attr-defined]
        acc = accumulation_dtype(a.dtype)
        total = torch.zeros((), dtype=acc, device=a.device)
        for start in range(0, a.shape[0], chunk):
            values = fn(a[start : start + chunk], b)
            if term is None:
                total += _masked(values, start, exclude).sum(dtype=acc)
            else:
                total += _value_sum(values, term.value, start, exclude)
        return total

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        a, b = ctx.saved_tensors  # type: ignore[attr-defined]
        need: tuple[bool, bool] = ctx.needs_input_grad[:2]  # type: ignore[attr-defined]
        pairs = (ctx.fn, ctx.term, ctx.exclude)  # type: ignore[attr-defined]
        if torch.is_grad_enabled():
            grad_a, grad_b = _graph_grads(a, b, need, grad, *pairs)
        else:
            grad_a, grad_b = _chunked_grads(a, b, need, grad, ctx.chunk, *pairs)  # type: ignore[attr-defined]
        return grad_a, grad_b, None, None, None, None


def _by_input(grads: Iterable[Tensor], need: tuple[bool, bool]) -> tuple[Tensor | None, ...]:
    """The gradients of the inputs that need one (in order), None for the others."""
    given = iter(grads)
    return tuple(next(given) if needed else None for needed in need)


def _graph_grads(
    a: Tensor,
    b: Tensor,
    need: tuple[bool, bool],
    grad: Tensor,
    fn: PairFn,
    term: SlopedTerm | None,
    exclude: tuple[int, ...],
) -> tuple[Tensor | None, ...]:
    """create_graph (second derivatives): a differentiable recomputation, dense, since the
    chunk-by-chunk gradient of :func:`_chunked_grads` is a constant to autograd."""
    a, b = a.view_as(a), b.view_as(b)  # partial derivatives, also when b is a
    wrt = [t for t, needed in zip((a, b), need, strict=True) if needed]
    total = _plain_sum(fn(a, b), term, exclude)
    return _by_input(torch.autograd.grad(total, wrt, grad, create_graph=True), need)


def _chunk_grads(
    fn: PairFn, term: SlopedTerm | None, a: Tensor, b: Tensor, start: int, exclude: tuple[int, ...]
) -> tuple[Tensor, ...]:
    """The gradient of one chunk's sum (rows ``start..`` of the full matrix) with respect to
    those of ``a`` and ``b`` that require one."""
    wrt = [t for t in (a, b) if t.requires_grad]
    values = fn(a, b)
    if term is None:
        total = _masked(values, start, exclude).sum(dtype=accumulation_dtype(a.dtype))
        return torch.autograd.grad(total, wrt)
    # The term's gradient is its slope: only the similarity is recomputed.
    slope = _own(term.slope(values.detach()), values)
    _zero_diagonals(slope, start, exclude)
    return torch.autograd.grad(values, wrt, slope)


def _chunked_grads(
    a: Tensor,
    b: Tensor,
    need: tuple[bool, bool],
    grad: Tensor,
    chunk: int,
    fn: PairFn,
    term: SlopedTerm | None,
    exclude: tuple[int, ...],
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients chunk by chunk: each chunk is recomputed and differentiated on the spot;
    ``a``'s rows are written in place, ``b``'s accumulated in at least float32."""
    need_a, need_b = need
    grad_a = torch.zeros_like(a) if need_a else None
    grad_b = (
        torch.zeros(b.shape, dtype=accumulation_dtype(a.dtype), device=b.device) if need_b else None
    )
    with torch.enable_grad():
        b_ = b.detach().requires_grad_(need_b)
        for start in range(0, a.shape[0], chunk):
            a_ = a[start : start + chunk].detach().requires_grad_(need_a)
            grads = iter(_chunk_grads(fn, term, a_, b_, start, exclude))
            if grad_a is not None:
                grad_a[start : start + chunk] = next(grads)
            if grad_b is not None:
                grad_b += next(grads)
    if grad_a is not None:
        grad_a *= grad.to(a.dtype)
    if grad_b is not None:
        grad_b = (grad_b * grad).to(b.dtype)
    return grad_a, grad_b


def chunk_rows(
    rows: int, cols: int, chunk_size: ChunkSize = "auto", device: str = "cpu"
) -> int | None:
    """The rows per chunk that :func:`pair_sum` uses, or None for the dense path.

    Example:
        >>> chunk_rows(256, 65536)  # 2**20 pairs per chunk on the CPU
        16
        >>> chunk_rows(256, 65536, device="cuda")
        64
        >>> chunk_rows(256, 256) is None
        True
    """
    if chunk_size is None:
        return None
    if chunk_size == "auto":
        budget = CHUNK_PAIRS.get(device, CHUNK_PAIRS["default"])
        return None if rows * cols <= budget else max(1, budget // max(cols, 1))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be 'auto', None or an int >= 1, got {chunk_size!r}")
    return chunk_size


def pair_sum(
    fn: PairFn,
    a: Tensor,
    b: Tensor,
    exclude: Iterable[int] = (),
    chunk_size: ChunkSize = "auto",
    *,
    term: SlopedTerm | None = None,
    symmetric: bool = False,
) -> Tensor:
    """``sum_{(i, j): j - i not in exclude} fn(a, b)[i, j]``, in at least float32; with
    ``term``, the sum of ``term(fn(a, b))[i, j]``, differentiated through ``term.slope``.

    ``symmetric=True`` declares ``fn(x, y) == fn(y, x).T`` with nothing else learning inside
    ``fn``; then, for a batch against itself (``b is a``, exclusions symmetric), the gradient
    through ``b`` is the mirror image of the one through ``a``: only the latter is computed
    (one matrix product fewer) and doubled. Same value, same gradient up to rounding; second
    derivatives (``create_graph=True``) differentiate both sides.

    Under ``torch.func`` transforms the sum is plain autograd through ``fn`` and ``term``,
    dense whatever ``chunk_size`` says.

    ``fn`` must be row-wise: ``fn(a[s:e], b)`` is ``fn(a, b)[s:e]``. ``chunk_size``:
    ``"auto"`` (dense up to the device's :data:`CHUNK_PAIRS` pairs, chunked above), ``None``
    (always dense) or the number of rows per chunk (always chunked: nothing of size
    ``len(a) * len(b)`` is kept for the backward pass, which recomputes each chunk).

    Example:
        >>> import torch
        >>> a = torch.arange(3.0)[:, None]
        >>> fn = lambda x, y: x * y.T
        >>> float(pair_sum(fn, a, a, exclude=(0,)))  # 2 * (0*1 + 0*2 + 1*2)
        4.0
        >>> float(pair_sum(fn, a, a, exclude=(0,), chunk_size=2))
        4.0
    """
    excluded = tuple(sorted(set(exclude)))
    if functorch_active():
        return _plain_sum(fn(a, b), term, excluded)
    mirrored = symmetric and b is a and excluded == tuple(sorted({-k for k in excluded}))
    if mirrored and torch.is_grad_enabled() and a.requires_grad:
        return _MirroredSum.apply(a, fn, excluded, chunk_size, term)
    rows = chunk_rows(a.shape[0], b.shape[0], chunk_size, a.device.type)
    if rows is None:
        if term is not None:
            return _SlopedSum.apply(fn(a, b), term.value, term.slope, 0, excluded)
        return _masked(fn(a, b), 0, excluded).sum(dtype=accumulation_dtype(a.dtype))
    return _ChunkedPairSum.apply(a, b, fn, excluded, rows, term)
