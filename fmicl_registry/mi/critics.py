"""Critics for the mutual-information benchmark: functions ``T(x, y)`` on all pairs of a batch.

Both map a batch ``x`` (B, d) and ``y`` (B, d) to the score matrix ``T[i, j] = T(x_i, y_j)``:
the diagonal scores joint pairs (positives), the off-diagonal product-of-marginals pairs
(negatives). They follow Poole et al. (2019), "On variational bounds of mutual information":

- :class:`SeparableCritic`: ``T(x, y) = <g(x), h(y)>`` with two MLPs (2 hidden layers of 256
  ReLU units and a 32-dimensional embedding in the paper), one matrix product for all pairs;
- :class:`ConcatCritic`: ``T(x, y) = MLP([x, y])`` evaluated on all ``B^2`` pairs. Its first
  layer is applied to ``x`` and ``y`` separately and summed per pair, which is the same function
  as the linear layer on the concatenation at a fraction of the cost.

Example:
    >>> import torch
    >>> from fmicl_registry.mi.critics import build_critic
    >>> critic = build_critic("concat", dim=20, hidden=64)
    >>> critic(torch.randn(8, 20), torch.randn(8, 20)).shape
    torch.Size([8, 8])
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

Tensor = torch.Tensor
CriticKind = Literal["separable", "concat"]
CRITICS: tuple[str, ...] = get_args(CriticKind)


def mlp(inputs: int, hidden: int, outputs: int, layers: int = 2) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``, then a linear output layer."""
    if layers < 1:
        raise ValueError(f"an MLP needs at least one hidden layer, got layers={layers!r}")
    modules: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)


class SeparableCritic(nn.Module):
    """``T(x, y) = <g(x), h(y)>``: two MLP encoders and a dot product (Poole et al. 2019).

    Example:
        >>> import torch
        >>> critic = SeparableCritic(dim=4, hidden=16, embed=8)
        >>> x, y = torch.randn(3, 4), torch.randn(3, 4)
        >>> scores = critic(x, y)
        >>> torch.allclose(scores[0, 1], critic.g(x[0]) @ critic.h(y[1]))
        True
    """

    def __init__(self, dim: int, hidden: int = 256, embed: int = 32, layers: int = 2):
        super().__init__()
        self.g = mlp(dim, hidden, embed, layers)
        self.h = mlp(dim, hidden, embed, layers)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """The (B, B') score matrix ``T[i, j] = <g(x_i), h(y_j)>``."""
        return self.g(x) @ self.h(y).T


class ConcatCritic(nn.Module):
    """``T(x, y) = MLP([x, y])`` on every pair ``(x_i, y_j)`` (Poole et al. 2019).

    Example:
        >>> import torch
        >>> critic = ConcatCritic(dim=4, hidden=16)
        >>> x, y = torch.randn(3, 4), torch.randn(3, 4)
        >>> scores = critic(x, y)
        >>> torch.allclose(scores[2, 0], critic.reference(torch.cat([x[2], y[0]])), atol=1e-6)
        True
    """

    def __init__(self, dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.dim = dim
        self.net = mlp(2 * dim, hidden, 1, layers)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """The (B, B') score matrix ``T[i, j] = MLP([x_i, y_j])``."""
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        weight_x, weight_y = first.weight[:, : self.dim], first.weight[:, self.dim :]
        hidden = (x @ weight_x.T)[:, None, :] + (y @ weight_y.T)[None, :, :] + first.bias
        return self.net[1:](hidden).squeeze(-1)

    def reference(self, pair: Tensor) -> Tensor:
        """The MLP on concatenated pairs ``[x, y]`` (..., 2d), as written (for checking)."""
        return self.net(pair).squeeze(-1)


def build_critic(
    kind: str, dim: int, *, hidden: int = 256, layers: int = 2, embed: int = 32
) -> nn.Module:
    """A critic by name: ``"separable"`` or ``"concat"`` (``embed`` is for the separable one)."""
    if kind == "separable":
        return SeparableCritic(dim, hidden=hidden, embed=embed, layers=layers)
    if kind == "concat":
        return ConcatCritic(dim, hidden=hidden, layers=layers)
    raise ValueError(f"no critic {kind!r}; the critics are: {', '.join(CRITICS)}")
