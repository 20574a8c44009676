"""Torch primitives the compiled code calls, where torch's own gradient loses accuracy.

``torch.expm1`` differentiates as ``grad * (expm1(x) + 1)``, which in float32 rounds to 0 or
doubles for ``x < -17``: the composed terms of Pearson or Neyman would get wrong gradients.
``expm1`` here has the same value and the exact derivative ``exp(x)``. It is an
``autograd.Function`` with ``setup_context`` and a generated vmap rule, so it works under
``torch.func.grad``, ``vmap``, ``jvp`` and ``torch.compile``.
"""

from __future__ import annotations

from typing import Any

import torch


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
    return _Expm1.apply(x)
