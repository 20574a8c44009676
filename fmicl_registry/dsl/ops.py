"""Torch primitives the compiled code calls, where torch's own gradient loses accuracy.

``torch.expm1`` differentiates as ``grad * (expm1(x) + 1)``, which in float32 rounds to 0 or
doubles for ``x < -17``: the composed terms of Pearson or Neyman would get wrong gradients.
``expm1`` here has the same value and the exact derivative ``exp(x)``. It is an
``autograd.Function`` with ``setup_context`` and a generated vmap rule, so it works under
``torch.func.grad``, ``vmap``, ``jvp`` and ``torch.compile``.

``SlopedTerm`` differentiates a composed term by its compiled slope the same way, and
``piecewise`` joins forms chosen per region at run time (``Divergence.terms_on``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

_PLAIN: contextvars.ContextVar[bool] = contextvars.ContextVar("fmicl_plain_ops", default=False)


@contextlib.contextmanager
def plain() -> Iterator[None]:
    """Inside, :func:`expm1` is ``torch.expm1`` itself: the same value, without the custom
    ``autograd.Function`` (whose every call costs tens of microseconds of Python in
    ``Function.apply``). For code that never differentiates through the primitives: the forward
    pass of a term differentiated by its slope (``objectives._pairs.sloped_sum``).

    Example:
        >>> with plain():
        ...     y = expm1(torch.zeros(2, requires_grad=True))
        >>> y.grad_fn.name()
        'Expm1Backward0'
    """
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


def functorch_active() -> bool:
    """Whether a ``torch.func`` transform (grad, vmap, jvp...) is running: code that keeps
    state between passes in an old-style ``autograd.Function``, or changes tensors in place,
    takes its plain path then.

    Example:
        >>> seen = []
        >>> _ = torch.func.vmap(lambda x: seen.append(functorch_active()) or x)(torch.zeros(2))
        >>> functorch_active(), seen
        (False, [True])
    """
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(active is not None and active())


class _Expm1(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.expm1(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x)

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return tangent * torch.exp(x)


def expm1(x: torch.Tensor) -> torch.Tensor:
    """``exp(x) - 1`` with an accurate gradient.

    Example:
        >>> x = torch.tensor([-20.0], requires_grad=True)
        >>> expm1(x).backward()
        >>> bool(torch.isclose(x.grad, torch.exp(x.detach())).all())
        True
    """
    if _PLAIN.get():
        return torch.expm1(x)
    return _Expm1.apply(x)


# ------------------------------------------------------------------------- sloped terms
Fn = Callable[[torch.Tensor], torch.Tensor]


class _Sloped(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, value: Fn, slope: Fn) -> torch.Tensor:
        out = value(x)
        # a term that is log_r itself (KL's positive term, f' = log u) returns its input, which
        # autograd refuses to save for backward: hand back a view instead
        return out.view_as(out) if out is x else out

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])
        ctx.slope = inputs[2]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.slope(x), None, None

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor, *unused: Any) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return tangent * ctx.slope(x)


class SlopedTerm:
    """A function of ``log_r`` computed by ``value`` and differentiated by ``slope``.

    ``slope`` is the exact derivative of ``value``, compiled as a stable form of its own
    (``u f''(u)`` for the positive term, ``u^2 f''(u)`` for the negative one). Autograd then
    records one node instead of one per operation of the form: the backward pass is
    ``grad * slope(log_r)``, a few kernels, and the forward pass keeps only ``log_r``. Works
    under ``torch.func`` (``grad``, ``vmap``, ``jvp``); higher derivatives go through
    autograd of ``slope``.

    Example:
        >>> sigmoid = SlopedTerm(torch.nn.functional.softplus, torch.sigmoid)
        >>> x = torch.tensor([0.0], requires_grad=True)
        >>> sigmoid(x).backward()
        >>> float(x.grad)
        0.5
    """

    __slots__ = ("slope", "value")

    def __init__(self, value: Fn, slope: Fn) -> None:
        self.value = value
        self.slope = slope

    def __call__(self, log_r: torch.Tensor) -> torch.Tensor:
        return _Sloped.apply(log_r, self.value, self.slope)

    def __repr__(self) -> str:
        names = (getattr(f, "__name__", repr(f)) for f in (self.value, self.slope))
        return "SlopedTerm({}, {})".format(*names)


def _region_mask(x: torch.Tensor, regions: Sequence[tuple[float, float]]) -> torch.Tensor:
    mask: torch.Tensor | None = None
    for low, high in regions:
        part: torch.Tensor | None = None
        if math.isfinite(low):
            part = x >= low
        if math.isfinite(high):
            part = x < high if part is None else part & (x < high)
        if part is None:
            part = torch.ones_like(x, dtype=torch.bool)
        mask = part if mask is None else mask | part
    assert mask is not None
    return mask


def _inside(low: float, high: float) -> float:
    if math.isinf(low):
        return high - 1.0
    if math.isinf(high):
        return low + 1.0
    return (low + high) / 2


def piecewise(pieces: Sequence[tuple[float, float, Fn]]) -> Fn:
    """One function from ``(low, high, fn)`` pieces covering the real line: ``fn`` on
    ``[low, high)``; a single distinct ``fn`` is returned as it is.

    Does what the compiled piecewise functions do: each form is computed once, on the points of
    its own regions, other points being moved to a point inside one of its regions, so an
    overflow elsewhere poisons neither value nor gradient; NaN goes to the last form.

    Example:
        >>> f = piecewise([(-math.inf, 0.0, torch.neg), (0.0, math.inf, torch.exp)])
        >>> f(torch.tensor([-2.0, 0.0]))
        tensor([2., 1.])
    """
    forms: dict[Fn, list[tuple[float, float]]] = {}
    for low, high, fn in pieces:
        forms.setdefault(fn, []).append((low, high))
    items = list(forms.items())
    if len(items) == 1:
        return items[0][0]

    def joined(log_r: torch.Tensor) -> torch.Tensor:
        masks: list[torch.Tensor] = []
        values: list[torch.Tensor] = []
        for i, (fn, regions) in enumerate(items):
            safe = _inside(*regions[0])
            if i < len(items) - 1:
                masks.append(_region_mask(log_r, regions))
                values.append(fn(torch.where(masks[-1], log_r, safe)))
            else:
                others = functools.reduce(torch.logical_or, masks)
                values.append(fn(torch.where(others, safe, log_r)))
        out = values[-1]
        for mask, value in zip(reversed(masks), reversed(values[:-1]), strict=True):
            out = torch.where(mask, value, out)
        return out

    return joined
