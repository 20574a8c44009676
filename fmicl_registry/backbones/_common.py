"""What every backbone shares: the error type and the checks of ``input_shape``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..errors import BackboneError


def check_input_shape(name: str, input_shape: Any) -> tuple[int, int, int]:
    """``input_shape`` as ``(C, H, W)`` of positive ints, or a :class:`BackboneError`.

    Example:
        >>> check_input_shape("small_cnn", [1, 8, 8])
        (1, 8, 8)
    """
    ok = (
        isinstance(input_shape, Sequence)
        and not isinstance(input_shape, str)
        and len(input_shape) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_shape)
    )
    if not ok:
        raise BackboneError(
            f"backbone {name!r}: input_shape must be (channels, height, width), three ints "
            f">= 1, e.g. (3, 32, 32); got {input_shape!r}"
        )
    c, h, w = input_shape
    return int(c), int(h), int(w)


def check_positive_int(name: str, option: str, value: Any) -> int:
    """``value`` if it is an int >= 1, else a :class:`BackboneError` naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BackboneError(f"backbone {name!r}: {option} must be an int >= 1, got {value!r}")
    return value


def set_output_dim(module: nn.Module, output_dim: int) -> nn.Module:
    """Attach the ``output_dim`` attribute the projection heads read (hookspec contract)."""
    # setattr: nn.Module's typed __setattr__ only admits tensors and modules.
    setattr(module, "output_dim", int(output_dim))  # noqa: B010
    return module
