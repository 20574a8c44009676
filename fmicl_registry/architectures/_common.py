"""What every architecture shares: the error type and the checks of its arguments."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ..errors import ArchitectureError


def check_backbone(name: str, backbone: Any) -> int:
    """The backbone's ``output_dim`` (the projection head's input size), checked."""
    if not isinstance(backbone, nn.Module):
        raise ArchitectureError(
            f"architecture {name!r}: backbone must be a torch.nn.Module (e.g. "
            f"fm.get_component('backbones', 'resnet18')), got {type(backbone).__name__}"
        )
    dim = getattr(backbone, "output_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ArchitectureError(
            f"architecture {name!r}: the backbone {type(backbone).__name__} needs an int "
            f"attribute output_dim (its feature size; the projection head reads it), got {dim!r}"
        )
    return dim


def check_objective(name: str, objective: Any) -> None:
    """Refuse an objective that cannot be called as ``objective(z1, z2)``."""
    if not callable(objective):
        raise ArchitectureError(
            f"architecture {name!r}: objective must be a module called as objective(z1, z2) "
            f"(e.g. fm.get_objective('fmicl')), got {type(objective).__name__}"
        )


def accepts_queue(objective: Any) -> bool:
    """Whether ``objective(z1, z2, queue=keys)`` is a valid call (``queue`` or ``**kwargs``)."""
    call = objective.forward if isinstance(objective, nn.Module) else objective
    try:
        parameters = inspect.signature(call).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True
    return any(p.name == "queue" or p.kind is p.VAR_KEYWORD for p in parameters)


def check_int(name: str, option: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum``, else an :class:`ArchitectureError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArchitectureError(
            f"architecture {name!r}: {option} must be an int >= {minimum}, got {value!r}"
        )
    return value


def check_momentum(name: str, momentum: Any) -> float:
    """``momentum`` as a float in ``[0, 1]``, else an :class:`ArchitectureError`."""
    if isinstance(momentum, bool) or not isinstance(momentum, int | float):
        raise ArchitectureError(
            f"architecture {name!r}: momentum must be a number in [0, 1], got {momentum!r}"
        )
    if not 0.0 <= float(momentum) <= 1.0:
        raise ArchitectureError(
            f"architecture {name!r}: momentum must be in [0, 1] (0.99 for small data sets, "
            f"0.999 for ImageNet in MoCo), got {momentum!r}"
        )
    return float(momentum)
